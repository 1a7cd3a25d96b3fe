//! The TLS defaults the operator gives a gateway in the cluster (`PGSSLMODE=verify-full`,
//! `PGSSLROOTCERT` = the mounted CA bundle; operator/src/tenant/build/database_tls.rs),
//! as the gateway's own store sees them: a URL without `sslmode` must verify the server,
//! an explicit `sslmode` in the URL wins, and the test Postgres (no TLS) keeps working
//! with `sslmode=disable`.
//!
//! The variables are process-wide, so the checks run in a child process (this test
//! binary, filtered to the one test) with the variables set, as the kubelet would set
//! them; the parent only checks that the child passed.

#![allow(clippy::unwrap_used)] // the TLS listener's setup outside #[test] fns

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use switchboard_store::postgres::PgStore;

const CHILD: &str = "SWITCHBOARD_DATABASE_TLS_CHILD";

fn with_query(url: &str, pair: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{pair}")
}

#[tokio::test]
async fn the_cluster_tls_default_yields_to_an_explicit_sslmode() {
    if std::env::var_os(CHILD).is_none() {
        let ca = std::env::temp_dir().join(format!("sb-tls-ca-{}.pem", std::process::id()));
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "the_cluster_tls_default_yields_to_an_explicit_sslmode",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .env("PGSSLMODE", "verify-full")
            .env("PGSSLROOTCERT", &ca)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&ca);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "the child failed:\n{text}");
        assert!(text.contains("1 passed"), "the child ran no test:\n{text}");
        return;
    }

    // The driver's reading of the variables, and of URLs that name a mode.
    let plain = PgConnectOptions::from_str("postgres://u@db.example.com/voice").unwrap();
    assert!(matches!(plain.get_ssl_mode(), PgSslMode::VerifyFull));
    for (pair, expected) in [
        ("sslmode=disable", "Disable"),
        ("sslmode=require", "Require"),
        ("sslmode=verify-ca", "VerifyCa"),
    ] {
        let url = with_query("postgres://u@db.example.com/voice", pair);
        let options = PgConnectOptions::from_str(&url).unwrap();
        assert_eq!(format!("{:?}", options.get_ssl_mode()), expected, "{url}");
    }

    // The test Postgres has no TLS: verify-full cannot connect, sslmode=disable can.
    let Some(admin) = switchboard_tests::services::postgres() else {
        return;
    };
    // (open itself succeeds on an unreachable server: the gateway starts and spools.)
    if let Ok(strict) = PgStore::open(&admin).await {
        let refused = strict.pool().acquire().await;
        assert!(refused.is_err(), "verify-full reached a server without TLS");
    }
    let explicit = PgStore::open(&with_query(&admin, "sslmode=disable"))
        .await
        .unwrap();
    explicit
        .pool()
        .acquire()
        .await
        .expect("an explicit sslmode=disable connects to the test Postgres");
}

/// A TLS server that speaks just enough Postgres for a client's TLS handshake: it
/// answers the `SSLRequest` with `S`, completes (or fails) the handshake with the
/// certificate of `tests/fixtures/tls` (localhost, signed by the test CA `ca.pem`), then
/// hangs up. It counts the handshakes that completed: a client that finished one
/// accepted the certificate.
struct TlsPostgres {
    port: u16,
    completed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
}

impl TlsPostgres {
    fn start() -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use std::io::{Read, Write};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(fixture("server.pem"))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let completed = Arc::new(AtomicUsize::new(0));
        let count = completed.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut sock) = stream else { continue };
                let _ = sock.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                let mut request = [0u8; 8];
                // SSLRequest: length 8, code 80877103.
                if sock.read_exact(&mut request).is_err()
                    || request[4..] != 80_877_103_u32.to_be_bytes()
                    || sock.write_all(b"S").is_err()
                {
                    continue;
                }
                let Ok(mut conn) = rustls::ServerConnection::new(config.clone()) else {
                    continue;
                };
                let mut ok = true;
                while conn.is_handshaking() {
                    if conn.complete_io(&mut sock).is_err() {
                        ok = false;
                        break;
                    }
                }
                if ok {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Self { port, completed }
    }

    fn url(&self) -> String {
        format!("postgres://sb:secret@localhost:{}/voice", self.port)
    }

    fn completed(&self) -> usize {
        self.completed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The operator's own connections (the admin URL's, a knowledge base's pgvector pool) in
/// the cluster: `verify-full` when the URL names no sslmode. A server whose certificate
/// does not chain to a trusted root is refused during the handshake; with the CA given
/// (`--database-ca-file`) the same server's certificate is accepted. Outside the cluster
/// policy (the driver's `prefer`) any certificate was accepted: what the operator did
/// before.
#[tokio::test]
async fn the_operator_refuses_a_database_whose_certificate_does_not_verify() {
    use switchboard_operator::database::{Provisioner, ProvisionerConfig};
    use switchboard_operator::knowledge::engine::{Engine, EngineConfig};
    use switchboard_operator::pg_tls::PgTls;

    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = TlsPostgres::start();
    let ca = std::fs::read_to_string(fixture("ca.pem")).unwrap();
    let admin = |tls: PgTls| {
        Provisioner::with_config(
            &server.url(),
            &ProvisionerConfig {
                tls,
                connect_timeout: std::time::Duration::from_secs(5),
                ..ProvisionerConfig::default()
            },
        )
        .unwrap()
    };

    // The admin connection, cluster policy, no CA: refused in the handshake.
    let err = admin(PgTls::cluster(None)).ping().await.unwrap_err();
    assert_eq!(server.completed(), 0, "the handshake completed: {err}");
    // The pgvector pool of the knowledge engine, the same.
    let engine = Engine::new(EngineConfig::default()).with_pg_tls(PgTls::cluster(None));
    let pool = engine.pool(&server.url()).unwrap();
    assert!(pool.acquire().await.is_err());
    assert_eq!(server.completed(), 0);

    // With the CA the certificate verifies (the fake server then hangs up; the pool may
    // try again, so counts only grow).
    let _ = admin(PgTls::cluster(Some(ca.clone()))).ping().await;
    let after_admin = server.completed();
    assert!(after_admin >= 1, "the CA bundle was not used");
    let engine = Engine::new(EngineConfig::default()).with_pg_tls(PgTls::cluster(Some(ca)));
    let _ = engine.pool(&server.url()).unwrap().acquire().await;
    let after_engine = server.completed();
    assert!(
        after_engine > after_admin,
        "the engine did not use the CA bundle"
    );

    // The URL as written (no cluster policy): prefer, no verification at all.
    let _ = admin(PgTls::default()).ping().await;
    assert!(
        server.completed() > after_engine,
        "prefer accepts any certificate"
    );
}
