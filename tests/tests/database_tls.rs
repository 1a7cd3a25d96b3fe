//! The TLS defaults the operator gives a gateway in the cluster (`PGSSLMODE=verify-full`,
//! `PGSSLROOTCERT` = the mounted CA bundle; operator/src/tenant/build/database_tls.rs),
//! as the gateway's own store sees them: a URL without `sslmode` must verify the server,
//! an explicit `sslmode` in the URL wins, and the test Postgres (no TLS) keeps working
//! with `sslmode=disable`.
//!
//! The variables are process-wide, so the checks run in a child process (this test
//! binary, filtered to the one test) with the variables set, as the kubelet would set
//! them; the parent only checks that the child passed.

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
