//! The tenants this gateway serves: manifests loaded, secrets resolved, indexed by the
//! numbers they answer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use switchboard_crds::{
    API_KEY_MIN_LEN, ApiKeySpec, LoadError, SecretRef, VoiceTenantSpec, parse_tenant,
};

use crate::admission::StreamKey;
use crate::api_keys::{ApiKey, ApiKeys};
use crate::realtime::session_config;
use crate::secrets::SecretSource;
use crate::tools;
use crate::twilio::rest::Credentials as RestCredentials;
use crate::twilio::twiml::{self, DialNoun, Fallback};

/// Why the tenants could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The manifest file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The manifest is not a valid VoiceTenant.
    #[error("{path}: {source}")]
    Manifest {
        /// File.
        path: PathBuf,
        /// Cause.
        source: LoadError,
    },
    /// A secret could not be resolved.
    #[error("tenant {tenant}: {field}: {problem}")]
    Secret {
        /// Tenant.
        tenant: String,
        /// Field path.
        field: &'static str,
        /// What went wrong (never the value).
        problem: String,
    },
    /// Two tenants claim one number, or one name.
    #[error("{0}")]
    Conflict(String),
    /// A tenant turns signature validation off and the gateway was not told it may serve
    /// unsigned webhooks.
    #[error(
        "{path}: tenant {tenant} sets spec.twilio.validateSignatures: false, which lets anyone \
         who reaches this gateway open calls on the tenant's OpenAI key; refusing to start. \
         For local experiments only, pass --allow-unsigned-webhooks \
         (SWITCHBOARD_ALLOW_UNSIGNED_WEBHOOKS=true)"
    )]
    UnsignedWebhooks {
        /// File.
        path: PathBuf,
        /// Tenant.
        tenant: String,
    },
    /// `spec.analysis` names no `apiKey` and a `baseUrl` other than OpenAI's: the
    /// tenant's OpenAI key would be sent there. The same rule as the operator's
    /// (`AnalysisApiKeyRequired`); on a laptop, name the key explicitly.
    #[error(
        "{path}: tenant {tenant}: spec.analysis.baseUrl {base_url:?} is not OpenAI's API, so the tenant's OpenAI key is not sent there; set spec.analysis.apiKey (it may name the same secret as spec.openai.apiKey)"
    )]
    AnalysisKeyRequired {
        /// File.
        path: PathBuf,
        /// Tenant.
        tenant: String,
        /// The analysis' base URL.
        base_url: String,
    },
}

/// Longest wait for a hand-off sentence or goodbye to be heard: a sentence plays in a few
/// seconds; a model that never finishes one must not hold the caller.
pub const HANDOFF_TIMEOUT_MS: u64 = 15_000;

/// Per-call settings of the call state machine (`call/session.rs`), derived from the
/// tenant once, when it is loaded.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Greeting text, if any.
    pub greeting: Option<String>,
    /// Whether the caller may interrupt the greeting.
    pub greeting_interruptible: bool,
    /// `session.update` that turns `interrupt_response` on, sent after a
    /// non-interruptible greeting has played.
    pub interruptible_update: String,
    /// Hard limit of the call, ms.
    pub max_call_ms: u64,
    /// Say goodbye and end the call after the caller has been silent this long, ms
    /// (0 = never). Wall clock: comfort noise defeats VAD-based silence detection.
    pub silence_timeout_ms: u64,
    /// Idle re-prompts (`input_audio_buffer.timeout_triggered`) allowed before the
    /// next one ends the call with the goodbye.
    pub idle_reprompts: u32,
    /// The model is told to wrap up this long before `max_call_ms` (0 = never).
    pub wrap_up_ms: u64,
    /// After a goodbye was decided, the call ends at the latest this much later.
    pub end_grace_ms: u64,
    /// Said word for word when the agent ends the call for silence or length.
    pub goodbye: String,
    /// Tools answered outside the state machine (e.g. `search_knowledge_base`): a call
    /// to one becomes [`Action::RunTool`](crate::call::session::Action::RunTool) and its answer comes back as
    /// [`Input::ToolResult`](crate::call::session::Input::ToolResult).
    pub external_tools: Vec<String>,
    /// The call is recorded: the state machine reports the agent audio it forwards and
    /// its clears ([`Action::Record`](crate::call::session::Action::Record)).
    pub record: bool,
    /// Names of the transfer targets (`spec.agent.transfer`) `transfer_call` accepts.
    pub transfer_targets: Vec<String>,
    /// Longest wait for the hand-off sentence (or goodbye) to be heard before the call is
    /// moved (or ended) anyway, ms.
    pub handoff_timeout_ms: u64,
}

/// A tenant's secrets as last read. Replaced whole when a re-read finds a change
/// ([`Tenant::refresh`]); readers clone the `Arc` (webhooks, call setup; never per
/// audio frame).
pub struct Credentials {
    /// Twilio Auth Token (HMAC key of signatures).
    pub auth_token: String,
    /// Secondary Twilio Auth Token during a rotation: signatures made with it are
    /// accepted too.
    pub secondary_auth_token: Option<String>,
    /// The auth token a re-read replaced, accepted until the instant given (the rotation
    /// grace: requests Twilio signed just before the switch still pass).
    pub previous_auth_token: Option<(String, Instant)>,
    /// Key of this tenant's stream tokens, derived from the auth token (never the auth
    /// token itself: see [`crate::admission`]).
    pub stream_key: StreamKey,
    /// The stream key of the previous auth token, during the grace.
    pub previous_stream_key: Option<(StreamKey, Instant)>,
    /// OpenAI API key.
    pub api_key: String,
    /// Secret of `spec.twilio.apiKey` (REST calls authenticate with it instead of the
    /// auth token).
    pub twilio_api_secret: Option<String>,
}

impl Credentials {
    /// Credentials without a rotation in progress.
    pub fn new(auth_token: String, secondary_auth_token: Option<String>, api_key: String) -> Self {
        Self {
            stream_key: StreamKey::derive(&auth_token),
            auth_token,
            secondary_auth_token,
            previous_auth_token: None,
            previous_stream_key: None,
            api_key,
            twilio_api_secret: None,
        }
    }

    /// The Twilio auth tokens whose signatures are accepted now: the primary, the
    /// secondary during a Twilio rotation, and the previous primary during the grace
    /// after a re-read replaced it.
    pub fn signing_tokens(&self) -> impl Iterator<Item = &str> {
        let now = Instant::now();
        std::iter::once(self.auth_token.as_str())
            .chain(self.secondary_auth_token.as_deref())
            .chain(
                self.previous_auth_token
                    .as_ref()
                    .filter(|(_, until)| now < *until)
                    .map(|(t, _)| t.as_str()),
            )
    }

    /// The keys stream tokens may be MAC'd with now (current, previous during the grace).
    pub fn stream_keys(&self) -> Vec<StreamKey> {
        let now = Instant::now();
        std::iter::once(self.stream_key.clone())
            .chain(
                self.previous_stream_key
                    .as_ref()
                    .filter(|(_, until)| now < *until)
                    .map(|(k, _)| k.clone()),
            )
            .collect()
    }
}

/// How secrets are re-read (`--secrets-refresh-seconds`, `--secret-rotation-grace-seconds`).
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// Re-read every tenant's secrets this often.
    pub refresh_every: Duration,
    /// A replaced auth token stays accepted this long.
    pub grace: Duration,
    /// After a signature failure a tenant's secrets are re-read at most this often (an
    /// unsigned request from the internet can trigger it: bounded).
    pub failure_refresh_min: Duration,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            refresh_every: Duration::from_secs(60),
            grace: Duration::from_secs(300),
            failure_refresh_min: Duration::from_secs(10),
        }
    }
}

/// One tenant, ready to serve. Its `Debug` never prints the auth token or the API key.
pub struct Tenant {
    /// `metadata.name`.
    pub name: String,
    /// The validated spec with defaults.
    pub spec: VoiceTenantSpec,
    credentials: RwLock<Arc<Credentials>>,
    /// When the secrets were last re-read after a signature failure (rate limit).
    last_failure_refresh: tokio::sync::Mutex<Option<Instant>>,
    /// Realtime URL (tenant override, else the gateway's).
    pub realtime_url: String,
    /// The `session.update` sent on connect.
    pub session_update: String,
    /// Settings for each call's state machine.
    pub settings: SessionSettings,
    /// What the caller hears when a stream ends without the gateway ending the call on
    /// purpose (`spec.agent.fallback`).
    pub fallback: Fallback,
    /// The tenant's API keys (`spec.console.apiKeys`), as digests; re-read with the
    /// other secrets.
    api_keys: RwLock<Arc<[ApiKey]>>,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .field("credentials", &"<redacted>")
            .field("realtime_url", &self.realtime_url)
            .field("settings", &self.settings)
            .field("fallback", &self.fallback)
            .finish_non_exhaustive()
    }
}

/// The secrets of a tenant as its manifest names them, read now.
async fn read_credentials(
    name: &str,
    spec: &VoiceTenantSpec,
    secrets: &SecretSource,
) -> Result<(String, Option<String>, String, Option<String>), TenantError> {
    let secret = |field: &'static str, r: &SecretRef| {
        let r = r.clone();
        async move {
            secrets
                .resolve(&r)
                .await
                .map_err(|problem| TenantError::Secret {
                    tenant: name.to_string(),
                    field,
                    problem,
                })
        }
    };
    let auth_token = secret("spec.twilio.authToken", &spec.twilio.auth_token).await?;
    let secondary = match &spec.twilio.secondary_auth_token {
        Some(r) => Some(secret("spec.twilio.secondaryAuthToken", r).await?),
        None => None,
    };
    let api_key = secret("spec.openai.apiKey", &spec.openai.api_key).await?;
    let twilio_api_secret = match &spec.twilio.api_key {
        Some(k) => Some(secret("spec.twilio.apiKey.secret", &k.secret).await?),
        None => None,
    };
    Ok((auth_token, secondary, api_key, twilio_api_secret))
}

/// One console API key of a tenant (`spec.console.apiKeys[]`), read now.
async fn read_api_key(
    tenant: &str,
    key: &ApiKeySpec,
    secrets: &SecretSource,
) -> Result<ApiKey, TenantError> {
    let field = "spec.console.apiKeys[].secret";
    let value = secrets
        .resolve(&key.secret)
        .await
        .map_err(|problem| TenantError::Secret {
            tenant: tenant.to_string(),
            field,
            problem,
        })?;
    if value.chars().count() < API_KEY_MIN_LEN {
        return Err(TenantError::Secret {
            tenant: tenant.to_string(),
            field,
            problem: format!(
                "key {:?} is shorter than {API_KEY_MIN_LEN} characters (generate one with `openssl rand -hex 32`)",
                key.name
            ),
        });
    }
    Ok(ApiKey::new(tenant, &key.name, &value))
}

impl Tenant {
    /// The secrets as last read.
    pub fn credentials(&self) -> Arc<Credentials> {
        self.credentials
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the secrets; a changed auth token stays accepted for `grace`.
    pub fn rotate(
        &self,
        auth_token: String,
        secondary: Option<String>,
        api_key: String,
        twilio_api_secret: Option<String>,
        grace: Duration,
    ) {
        let mut slot = self
            .credentials
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let old = slot.clone();
        let mut next = Credentials::new(auth_token, secondary, api_key);
        next.twilio_api_secret = twilio_api_secret;
        if next.auth_token != old.auth_token {
            let until = Instant::now() + grace;
            next.previous_auth_token = Some((old.auth_token.clone(), until));
            next.previous_stream_key = Some((old.stream_key.clone(), until));
        } else {
            next.previous_auth_token = old.previous_auth_token.clone();
            next.previous_stream_key = old.previous_stream_key.clone();
        }
        *slot = Arc::new(next);
    }

    /// The console API keys as last read.
    pub fn api_keys(&self) -> Arc<[ApiKey]> {
        self.api_keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the console API keys; `true` when they changed. Unlike the call
    /// secrets, a key that cannot be read (its Secret deleted, unreachable, too short) is
    /// dropped: a revoked key must stop opening the admin API, and the admin API is not
    /// on the call path. Sessions opened with a dropped or rotated key end with it
    /// ([`crate::access::Access::session`]).
    async fn refresh_api_keys(&self, secrets: &SecretSource) -> bool {
        let mut keys = Vec::new();
        for k in self.spec.console.iter().flat_map(|c| &c.api_keys) {
            match read_api_key(&self.name, k, secrets).await {
                Ok(key) => keys.push(key),
                Err(e) => {
                    tracing::warn!(tenant = self.name, key = k.name, error = %e, "console API key unreadable: refused until it can be read")
                }
            }
        }
        let mut slot = self
            .api_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if **slot == *keys {
            return false;
        }
        *slot = keys.into();
        tracing::info!(
            tenant = self.name,
            keys = slot.len(),
            "console API keys changed; sessions signed in with a replaced key are ended"
        );
        true
    }

    /// Re-reads the tenant's secrets (its console API keys too); `Ok(true)` when
    /// something changed. A failed read keeps the call secrets as they were (a Secrets
    /// Manager outage never unloads a tenant).
    pub async fn refresh(
        &self,
        secrets: &SecretSource,
        grace: Duration,
    ) -> Result<bool, TenantError> {
        let keys_changed = self.refresh_api_keys(secrets).await;
        let (auth, secondary, api_key, twilio_api_secret) =
            read_credentials(&self.name, &self.spec, secrets).await?;
        let old = self.credentials();
        if old.auth_token == auth
            && old.secondary_auth_token == secondary
            && old.api_key == api_key
            && old.twilio_api_secret == twilio_api_secret
        {
            return Ok(keys_changed);
        }
        let rotated = old.auth_token != auth;
        self.rotate(auth, secondary, api_key, twilio_api_secret, grace);
        tracing::info!(
            tenant = self.name,
            auth_token_rotated = rotated,
            grace_s = grace.as_secs(),
            "tenant secrets changed; the previous auth token stays accepted during the grace"
        );
        Ok(true)
    }

    /// After a request failed its signature check: re-reads the secrets (a rotation the
    /// schedule has not picked up yet) unless that was done within
    /// `rotation.failure_refresh_min`. `true` when something changed (check again).
    pub async fn refresh_after_failure(&self, secrets: &SecretSource, rotation: &Rotation) -> bool {
        let mut last = self.last_failure_refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < rotation.failure_refresh_min) {
            return false;
        }
        *last = Some(Instant::now());
        match self.refresh(secrets, rotation.grace).await {
            Ok(changed) => changed,
            Err(e) => {
                tracing::warn!(tenant = self.name, error = %e, "re-reading secrets after a signature failure failed");
                false
            }
        }
    }

    /// The Twilio auth tokens whose signatures this tenant accepts now (see
    /// [`Credentials::signing_tokens`]).
    pub fn signing_tokens(&self) -> Vec<String> {
        self.credentials()
            .signing_tokens()
            .map(str::to_string)
            .collect()
    }

    /// Who the gateway's Twilio REST calls for this tenant authenticate as, with the
    /// secrets as last read: the API key (`spec.twilio.apiKey`) when declared, else the
    /// account SID and auth token.
    pub fn rest_credentials(&self) -> RestCredentials {
        let c = self.credentials();
        let account_sid = self.spec.twilio.account_sid.clone();
        match (&self.spec.twilio.api_key, &c.twilio_api_secret) {
            (Some(k), Some(secret)) => RestCredentials {
                account_sid,
                username: k.sid.clone(),
                password: secret.clone(),
            },
            _ => RestCredentials {
                username: account_sid.clone(),
                account_sid,
                password: c.auth_token.clone(),
            },
        }
    }

    /// The TwiML that moves `call_sid` from agent leg `leg` to the transfer target named
    /// `target`: `<Dial>` with its ring timeout and caller ID, whose action
    /// (`/twilio/dial-done/…`) learns the outcome. `None` for a name the tenant does not
    /// declare.
    pub fn transfer_twiml(
        &self,
        public_base: &str,
        call_sid: &str,
        leg: u32,
        target: &str,
    ) -> Option<String> {
        let t = self.spec.agent.transfer.iter().find(|t| t.name == target)?;
        let action = format!(
            "{public_base}/twilio/dial-done/{}/{call_sid}/{leg}/{}",
            self.name, t.name
        );
        Some(twiml::document(&twiml::dial_verb(
            &DialNoun::from_address(t.address()),
            t.caller_id.as_deref(),
            t.ring_timeout_seconds,
            Some(&action),
        )))
    }

    /// The fallback TwiML for `call_sid` (its voicemail, if any, is kept with the call).
    pub fn fallback_twiml(&self, public_base: &str, call_sid: &str) -> String {
        twiml::document(&self.fallback_verbs(public_base, call_sid))
    }

    /// The fallback's verbs for `call_sid`, without `<Response>`: what follows
    /// `</Connect>` in the TwiML that starts a stream.
    pub fn fallback_verbs(&self, public_base: &str, call_sid: &str) -> String {
        let voicemail = format!("{public_base}/twilio/voicemail/{}/{call_sid}", self.name);
        self.fallback.verbs(&voicemail)
    }
}

/// All tenants, by number and by name.
#[derive(Debug, Default)]
pub struct Tenants {
    by_number: HashMap<String, Arc<Tenant>>,
    by_name: HashMap<String, Arc<Tenant>>,
}

impl Tenants {
    /// Loads every manifest, resolving secrets (from `secrets_dir` for `secretKeyRef`).
    /// `knowledge_of(tenant)` names the knowledge bases loaded for a tenant: the agent gets
    /// the search tool when it may use one of them. A tenant without signature validation
    /// is refused unless `allow_unsigned` (the gateway's `--allow-unsigned-webhooks`).
    pub async fn load(
        paths: &[PathBuf],
        default_realtime_url: &str,
        secrets: &SecretSource,
        knowledge_of: &dyn Fn(&str) -> Vec<String>,
        allow_unsigned: bool,
    ) -> Result<Self, TenantError> {
        let mut out = Tenants::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|source| TenantError::Read {
                path: path.clone(),
                source,
            })?;
            let vt = parse_tenant(&text).map_err(|source| TenantError::Manifest {
                path: path.clone(),
                source,
            })?;
            let name = vt.metadata.name.clone().unwrap_or_else(|| "default".into());
            let spec = vt.spec;
            if !spec.twilio.validate_signatures {
                if !allow_unsigned {
                    return Err(TenantError::UnsignedWebhooks {
                        path: path.clone(),
                        tenant: name,
                    });
                }
                tracing::warn!(
                    tenant = name,
                    path = %path.display(),
                    "SIGNATURE VALIDATION IS OFF for this tenant (--allow-unsigned-webhooks): \
                     anyone who can reach this gateway can place calls on its OpenAI key. \
                     Never run this way outside a laptop."
                );
            }
            if let Some(a) = &spec.analysis
                && a.borrows_openai_key_elsewhere()
            {
                return Err(TenantError::AnalysisKeyRequired {
                    path: path.clone(),
                    tenant: name,
                    base_url: a.effective_base_url().to_string(),
                });
            }
            let (auth_token, secondary_auth_token, api_key, twilio_api_secret) =
                read_credentials(&name, &spec, secrets).await?;
            let loaded = knowledge_of(&name);
            let knowledge = spec
                .agent
                .knowledge_bases
                .iter()
                .any(|kb| loaded.contains(kb));
            for kb in &spec.agent.knowledge_bases {
                if !loaded.contains(kb) {
                    tracing::warn!(
                        tenant = name,
                        kb,
                        "the agent lists a knowledge base that is not loaded (pass it with --knowledge)"
                    );
                }
            }
            let mut tenant = Self::build(
                name.clone(),
                spec,
                auth_token,
                api_key,
                default_realtime_url,
                knowledge,
            );
            if secondary_auth_token.is_some() || twilio_api_secret.is_some() {
                let c = tenant.credentials();
                tenant.rotate(
                    c.auth_token.clone(),
                    secondary_auth_token,
                    c.api_key.clone(),
                    twilio_api_secret,
                    Duration::ZERO,
                );
            }
            let mut keys = Vec::new();
            for k in tenant.spec.console.iter().flat_map(|c| &c.api_keys) {
                keys.push(read_api_key(&name, k, secrets).await?);
            }
            tenant.api_keys = RwLock::new(keys.into());
            out.insert(Arc::new(tenant))?;
        }
        Ok(out)
    }

    /// Builds a tenant from parts (also used by tests).
    pub fn build(
        name: String,
        spec: VoiceTenantSpec,
        auth_token: String,
        api_key: String,
        default_realtime_url: &str,
        knowledge: bool,
    ) -> Tenant {
        let agent = &spec.agent;
        // A recording disclosure opens the greeting and must be heard whole.
        let disclosure = spec.recordings.as_ref().and_then(|r| r.active_disclosure());
        let greeting_interruptible =
            disclosure.is_none() && agent.greeting.as_ref().is_none_or(|g| g.interruptible);
        let greeting = match (disclosure, &agent.greeting) {
            (Some(d), Some(g)) => Some(format!("{d} {}", g.text)),
            (Some(d), None) => Some(d.to_string()),
            (None, g) => g.as_ref().map(|g| g.text.clone()),
        };
        let tools = tools::for_agent(agent, knowledge);
        let settings = SessionSettings {
            greeting,
            greeting_interruptible,
            interruptible_update: session_config::set_interruptible(agent, true),
            max_call_ms: u64::from(agent.max_call_duration_seconds) * 1000,
            silence_timeout_ms: u64::from(agent.silence_timeout_seconds) * 1000,
            idle_reprompts: agent.call_ending.idle_reprompts,
            // At most half the call: a wrap-up as long as a short call would come first.
            wrap_up_ms: (u64::from(agent.call_ending.wrap_up_seconds) * 1000)
                .min(u64::from(agent.max_call_duration_seconds) * 500),
            end_grace_ms: u64::from(agent.call_ending.grace_seconds) * 1000,
            goodbye: agent.call_ending.goodbye.clone(),
            external_tools: tools::external_names(&tools),
            record: spec.recordings.as_ref().is_some_and(|r| r.enabled),
            transfer_targets: agent.transfer.iter().map(|t| t.name.clone()).collect(),
            handoff_timeout_ms: HANDOFF_TIMEOUT_MS,
        };
        Tenant {
            realtime_url: spec
                .openai
                .realtime_url
                .clone()
                .unwrap_or_else(|| default_realtime_url.to_string()),
            session_update: session_config::session_update(
                agent,
                greeting_interruptible,
                tools::declarations(&tools, agent),
            ),
            settings,
            fallback: Fallback::from_spec(&spec.agent.fallback),
            name,
            spec,
            credentials: RwLock::new(Arc::new(Credentials::new(auth_token, None, api_key))),
            last_failure_refresh: tokio::sync::Mutex::new(None),
            api_keys: RwLock::new(Arc::from(Vec::new())),
        }
    }

    /// Adds a tenant; refuses duplicate names and numbers.
    pub fn insert(&mut self, tenant: Arc<Tenant>) -> Result<(), TenantError> {
        if self.by_name.contains_key(&tenant.name) {
            return Err(TenantError::Conflict(format!(
                "two tenants are named {}",
                tenant.name
            )));
        }
        for n in &tenant.spec.phone_numbers {
            if let Some(other) = self.by_number.get(n) {
                return Err(TenantError::Conflict(format!(
                    "{n} is claimed by tenants {} and {}",
                    other.name, tenant.name
                )));
            }
        }
        for n in &tenant.spec.phone_numbers {
            self.by_number.insert(n.clone(), tenant.clone());
        }
        self.by_name.insert(tenant.name.clone(), tenant);
        Ok(())
    }

    /// The tenant answering `number`.
    pub fn by_number(&self, number: &str) -> Option<&Arc<Tenant>> {
        self.by_number.get(number)
    }

    /// The tenant named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.by_name.get(name)
    }

    /// The tenants whose Twilio account is `account_sid`.
    pub fn by_account(&self, account_sid: &str) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_name
            .values()
            .filter(move |t| t.spec.twilio.account_sid == account_sid)
    }

    /// Every tenant's API keys as last read (a snapshot: the keys are re-read with the
    /// secrets, so look them up for each request).
    pub fn api_keys(&self) -> ApiKeys {
        ApiKeys::new(
            self.by_name
                .values()
                .flat_map(|t| t.api_keys().iter().cloned().collect::<Vec<_>>())
                .collect(),
        )
    }

    /// All tenants.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_name.values()
    }

    /// The call store URL a tenant names in AWS Secrets Manager (`spec.database.url` with
    /// `awsSecretsManager`; the operator passes other references as
    /// `SWITCHBOARD_DATABASE_URL`), used when `--database-url` is not given. Read once, at
    /// start: the store's connection pool is opened with it.
    ///
    /// # Errors
    /// [`TenantError::Secret`] when it cannot be read; [`TenantError::Conflict`] when two
    /// tenants of one gateway name different ones.
    pub async fn database_url_from_aws(
        &self,
        secrets: &SecretSource,
    ) -> Result<Option<String>, TenantError> {
        let mut found: Option<(String, String)> = None;
        for t in self.all() {
            let Some(r) = t.spec.database.as_ref().and_then(|d| d.url.as_ref()) else {
                continue;
            };
            if r.aws_secrets_manager.is_none() {
                continue;
            }
            let url = secrets
                .resolve(r)
                .await
                .map_err(|problem| TenantError::Secret {
                    tenant: t.name.clone(),
                    field: "spec.database.url",
                    problem,
                })?;
            match &found {
                Some((other, u)) if *u != url => {
                    return Err(TenantError::Conflict(format!(
                        "tenants {other} and {} name different database URLs; one gateway has one call store",
                        t.name
                    )));
                }
                Some(_) => {}
                None => found = Some((t.name.clone(), url)),
            }
        }
        Ok(found.map(|(_, url)| url))
    }

    /// Longest max call duration of any tenant, seconds.
    pub fn longest_call_seconds(&self) -> u64 {
        self.all()
            .map(|t| u64::from(t.spec.agent.max_call_duration_seconds))
            .max()
            .unwrap_or(0)
    }
}
