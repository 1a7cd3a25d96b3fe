//! The knowledge bases a tenant's gateway searches: their manifests in the tenant's
//! ConfigMap (the gateway's `--knowledge` files) and the Secrets they need mounted.

use serde::{Deserialize, Serialize};
use switchboard_crds::{BackendKind, KnowledgeBase, SecretKeySelector, VoiceTenant};

use super::CONFIG_DIR;
use crate::owner::MetadataError;
use crate::tenant::build::BuildError;
use crate::tenant::inputs::BuildInputs;

/// A knowledge base as a tenant's gateway gets it, prepared by the tenant controller's
/// dereference step from the `KnowledgeBase` objects named in `spec.agent.knowledgeBases`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnowledgeMount {
    /// The knowledge base's name.
    pub name: String,
    /// Its manifest (name and spec only, as [`render_knowledge_file`] renders it).
    pub manifest: String,
    /// Indexed in the tenant's Postgres schema (the gateway needs the tenant's database).
    pub pgvector: bool,
    /// Secret keys its search reads (Pinecone and OpenAI API keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretKeySelector>,
}

impl KnowledgeMount {
    /// Prepares `kb` for the builders.
    ///
    /// # Errors
    ///
    /// [`MetadataError::Name`], or [`BuildError::Render`] if serialization fails.
    pub fn of(kb: &KnowledgeBase) -> Result<Self, BuildError> {
        let name = kb
            .metadata
            .name
            .clone()
            .filter(|n| !n.is_empty())
            .ok_or(MetadataError::Name)?;
        Ok(Self {
            manifest: render_knowledge_file(kb)?,
            pgvector: kb.spec.backend.kind == BackendKind::Pgvector,
            secrets: crate::knowledge::target::secret_keys(kb),
            name,
        })
    }
}

/// The knowledge base manifest the gateway reads: its name and spec, nothing else from
/// the cluster (no status), so the file changes only when the spec does.
///
/// # Errors
///
/// [`MetadataError::Name`], or [`BuildError::Render`] if serialization fails.
pub fn render_knowledge_file(kb: &KnowledgeBase) -> Result<String, BuildError> {
    let name = kb
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or(MetadataError::Name)?;
    Ok(serde_saphyr::to_string(&KnowledgeBase::new(
        name,
        kb.spec.clone(),
    ))?)
}

/// Key of knowledge base `name`'s manifest in the tenant's ConfigMap.
pub fn knowledge_file(name: &str) -> String {
    format!("knowledge-{name}.yaml")
}

/// The knowledge bases the gateway is given, in name order: those of `ctx` that the
/// tenant's agent lists and that the gateway can reach. A pgvector one needs the tenant's
/// Postgres (the operator's provisioned role or `spec.database.url`); without it the
/// gateway would run in laptop mode and try to index by itself, so it is left out (the
/// knowledge base reports `TenantDatabasePending`).
pub fn searchable<'a>(vt: &VoiceTenant, ctx: &'a BuildInputs) -> Vec<&'a KnowledgeMount> {
    let has_database = ctx.database_url_secret.is_some()
        || vt.spec.database.as_ref().is_some_and(|d| d.url.is_some());
    let mut out: Vec<&KnowledgeMount> = ctx
        .knowledge_bases
        .iter()
        .filter(|k| vt.spec.agent.knowledge_bases.contains(&k.name))
        .filter(|k| has_database || !k.pgvector)
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.dedup_by(|a, b| a.name == b.name);
    out
}

/// The gateway's `SWITCHBOARD_KNOWLEDGE`: the mounted manifest paths, comma-separated;
/// `None` without knowledge bases.
pub fn knowledge_paths(vt: &VoiceTenant, ctx: &BuildInputs) -> Option<String> {
    let paths: Vec<String> = searchable(vt, ctx)
        .iter()
        .map(|k| format!("{CONFIG_DIR}/{}", knowledge_file(&k.name)))
        .collect();
    (!paths.is_empty()).then(|| paths.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(extra: &str) -> VoiceTenant {
        switchboard_crds::parse_tenant(&format!(
            r#"apiVersion: voice.switchboard.dev/v1alpha1
kind: VoiceTenant
metadata: {{ name: demo, namespace: ns, uid: u1 }}
spec:
  displayName: Demo
  phoneNumbers: ["+15005550006"]
  agent: {{ knowledgeBases: [faq, prices] }}
  twilio:
    accountSid: ACe5b9b91d74144c1eab5502f239bd8ed9
    authToken: {{ secretKeyRef: {{ name: keys, key: twilio }} }}
  openai:
    apiKey: {{ secretKeyRef: {{ name: keys, key: openai }} }}
{extra}"#
        ))
        .unwrap()
    }

    fn mount(name: &str, pgvector: bool) -> KnowledgeMount {
        KnowledgeMount {
            name: name.into(),
            manifest: format!("name: {name}\n"),
            pgvector,
            secrets: Vec::new(),
        }
    }

    fn names(vt: &VoiceTenant, ctx: &BuildInputs) -> Vec<String> {
        searchable(vt, ctx).iter().map(|k| k.name.clone()).collect()
    }

    #[test]
    fn only_listed_knowledge_bases_and_pgvector_only_with_a_database() {
        let mut ctx = BuildInputs::new("img");
        ctx.knowledge_bases = vec![
            mount("prices", false),
            mount("faq", true),
            mount("internal", false),
        ];
        // No database: the gateway would index a pgvector knowledge base by itself.
        assert_eq!(names(&tenant(""), &ctx), ["prices"]);
        let with_url = tenant("  database: { url: { secretKeyRef: { name: db, key: url } } }\n");
        assert_eq!(names(&with_url, &ctx), ["faq", "prices"]);
        ctx.database_url_secret = Some(SecretKeySelector {
            name: "sb-db".into(),
            key: "url".into(),
        });
        assert_eq!(names(&tenant(""), &ctx), ["faq", "prices"]);
        assert_eq!(
            knowledge_paths(&tenant(""), &ctx).as_deref(),
            Some("/etc/switchboard/knowledge-faq.yaml,/etc/switchboard/knowledge-prices.yaml")
        );
        ctx.knowledge_bases.clear();
        assert_eq!(knowledge_paths(&tenant(""), &ctx), None);
    }

    #[test]
    fn a_rendered_manifest_parses_back_without_cluster_fields() {
        let mut kb = switchboard_crds::parse_knowledge_base(
            "apiVersion: voice.switchboard.dev/v1alpha1\nkind: KnowledgeBase\nmetadata: { name: faq, namespace: ns, uid: x, resourceVersion: \"9\" }\nspec:\n  tenant: demo\n  sources:\n    - inline:\n        documents:\n          - { title: Hours, content: Open 9 to 5 }\n",
        )
        .unwrap();
        kb.status = Some(Default::default());
        let m = KnowledgeMount::of(&kb).unwrap();
        assert!(m.pgvector);
        assert!(!m.manifest.contains("resourceVersion") && !m.manifest.contains("status"));
        let back = switchboard_crds::parse_knowledge_base(&m.manifest).unwrap();
        assert_eq!(back.spec, kb.spec);
    }
}
