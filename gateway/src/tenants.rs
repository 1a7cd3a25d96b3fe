//! The tenants this gateway serves: manifests loaded, secrets resolved, indexed by the
//! numbers they answer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchboard_crds::{LoadError, SecretRef, VoiceTenantSpec, parse_tenant};

use crate::admission::StreamKey;
use crate::realtime::session_config;
use crate::secrets::resolve_secret;
use crate::tools;
use crate::twilio::rest::Credentials;
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
    /// End the call after this much silence from both sides, ms (0 = never).
    pub silence_timeout_ms: u64,
    /// Tools answered outside the state machine (e.g. `search_knowledge_base`): a call
    /// to one becomes [`Action::RunTool`](crate::call::session::Action::RunTool) and its answer comes back as
    /// [`Input::ToolResult`](crate::call::session::Input::ToolResult).
    pub external_tools: Vec<String>,
    /// Names of the transfer targets (`spec.agent.transfer`) `transfer_call` accepts.
    pub transfer_targets: Vec<String>,
    /// Longest wait for the hand-off sentence (or goodbye) to be heard before the call is
    /// moved (or ended) anyway, ms.
    pub handoff_timeout_ms: u64,
}

/// One tenant, ready to serve. Its `Debug` never prints the auth token or the API key.
pub struct Tenant {
    /// `metadata.name`.
    pub name: String,
    /// The validated spec with defaults.
    pub spec: VoiceTenantSpec,
    /// Twilio Auth Token (HMAC key of signatures).
    pub auth_token: String,
    /// Secondary Twilio Auth Token during a rotation: signatures made with it are
    /// accepted too.
    pub secondary_auth_token: Option<String>,
    /// Key of this tenant's stream tokens, derived from the auth token (never the auth
    /// token itself: see [`crate::admission`]).
    pub stream_key: StreamKey,
    /// OpenAI API key.
    pub api_key: String,
    /// Realtime URL (tenant override, else the gateway's).
    pub realtime_url: String,
    /// The `session.update` sent on connect.
    pub session_update: String,
    /// Settings for each call's state machine.
    pub settings: SessionSettings,
    /// What the caller hears when a stream ends without the gateway ending the call on
    /// purpose (`spec.agent.fallback`).
    pub fallback: Fallback,
    /// Who the gateway's REST calls for this tenant authenticate as.
    pub rest_credentials: Credentials,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .field("auth_token", &"<redacted>")
            .field("api_key", &"<redacted>")
            .field("realtime_url", &self.realtime_url)
            .field("settings", &self.settings)
            .field("fallback", &self.fallback)
            .field("rest_credentials", &self.rest_credentials)
            .finish_non_exhaustive()
    }
}

impl Tenant {
    /// The Twilio auth tokens whose signatures this tenant accepts: the primary, and the
    /// secondary during a rotation.
    pub fn signing_tokens(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.auth_token.as_str()).chain(self.secondary_auth_token.as_deref())
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
        let voicemail = format!("{public_base}/twilio/voicemail/{}/{call_sid}", self.name);
        self.fallback.twiml(&voicemail)
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
    pub fn load(
        paths: &[PathBuf],
        default_realtime_url: &str,
        secrets_dir: &Path,
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
            let secret = |field: &'static str, r: &SecretRef| {
                resolve_secret(r, secrets_dir).map_err(|problem| TenantError::Secret {
                    tenant: name.clone(),
                    field,
                    problem,
                })
            };
            let auth_token = secret("spec.twilio.authToken", &spec.twilio.auth_token)?;
            let secondary_auth_token = match &spec.twilio.secondary_auth_token {
                Some(r) => Some(secret("spec.twilio.secondaryAuthToken", r)?),
                None => None,
            };
            let api_key = secret("spec.openai.apiKey", &spec.openai.api_key)?;
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
            tenant.secondary_auth_token = secondary_auth_token;
            if let Some(k) = &tenant.spec.twilio.api_key {
                tenant.rest_credentials = Credentials {
                    account_sid: tenant.spec.twilio.account_sid.clone(),
                    username: k.sid.clone(),
                    password: secret("spec.twilio.apiKey.secret", &k.secret)?,
                };
            }
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
        let greeting_interruptible = agent.greeting.as_ref().is_none_or(|g| g.interruptible);
        let tools = tools::for_agent(agent, knowledge);
        let settings = SessionSettings {
            greeting: agent.greeting.as_ref().map(|g| g.text.clone()),
            greeting_interruptible,
            interruptible_update: session_config::set_interruptible(agent, true),
            max_call_ms: u64::from(agent.max_call_duration_seconds) * 1000,
            silence_timeout_ms: u64::from(agent.silence_timeout_seconds) * 1000,
            external_tools: tools::external_names(&tools),
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
            rest_credentials: Credentials {
                account_sid: spec.twilio.account_sid.clone(),
                username: spec.twilio.account_sid.clone(),
                password: auth_token.clone(),
            },
            name,
            spec,
            stream_key: StreamKey::derive(&auth_token),
            auth_token,
            secondary_auth_token: None,
            api_key,
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

    /// All tenants.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_name.values()
    }

    /// Longest max call duration of any tenant, seconds.
    pub fn longest_call_seconds(&self) -> u64 {
        self.all()
            .map(|t| u64::from(t.spec.agent.max_call_duration_seconds))
            .max()
            .unwrap_or(0)
    }
}
