//! One simulated index: namespaces of records, exact search, list with prefix and
//! pagination, fetch, delete and stats. No I/O: the server calls these with parsed
//! requests and turns the results or [`ApiError`]s into answers.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;

/// Largest metadata per record, as serialised JSON (Pinecone's limit: 40 KB).
const MAX_METADATA_BYTES: usize = 40 * 1024;
/// Longest record id.
const MAX_ID_LEN: usize = 512;
/// Records per upsert.
const MAX_UPSERT: usize = 1000;
/// Largest `topK`.
const MAX_TOP_K: usize = 10_000;
/// Ids per fetch or delete.
const MAX_IDS: usize = 1000;

/// Distance metric of an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine similarity (higher is closer).
    Cosine,
    /// Dot product (higher is closer).
    Dotproduct,
    /// Squared Euclidean distance (lower is closer).
    Euclidean,
}

/// A stored record.
#[derive(Debug, Clone)]
struct Record {
    values: Vec<f32>,
    norm: f32,
    metadata: Option<Map<String, Value>>,
}

/// A record as upserted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertRecord {
    /// Record id.
    pub id: String,
    /// Dense values.
    pub values: Vec<f32>,
    /// Optional metadata object.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// A query match.
#[derive(Debug, Clone, Serialize)]
pub struct Match {
    /// Record id.
    pub id: String,
    /// Similarity (or distance, for euclidean).
    pub score: f32,
    /// Values when asked for (an empty list otherwise, as Pinecone answers).
    pub values: Vec<f32>,
    /// Metadata when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// A fetched record.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    /// Record id.
    pub id: String,
    /// Dense values.
    pub values: Vec<f32>,
    /// Metadata, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

/// What to search with.
pub enum QueryBy<'a> {
    /// A vector.
    Vector(&'a [f32]),
    /// The values of a stored record.
    Id(&'a str),
}

/// The `paginationToken` of `list`: where the previous page stopped, for which prefix.
#[derive(Serialize, Deserialize)]
struct Token {
    skip_past: String,
    prefix: String,
}

/// The data of one index.
#[derive(Debug)]
pub struct IndexData {
    dimension: usize,
    metric: Metric,
    namespaces: BTreeMap<String, BTreeMap<String, Record>>,
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

impl IndexData {
    /// An empty index.
    pub fn new(dimension: usize, metric: Metric) -> Self {
        Self {
            dimension,
            metric,
            namespaces: BTreeMap::new(),
        }
    }

    fn check_vector(&self, v: &[f32]) -> Result<(), ApiError> {
        if v.len() != self.dimension {
            return Err(ApiError::invalid(format!(
                "Vector dimension {} does not match the dimension of the index {}",
                v.len(),
                self.dimension
            )));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(ApiError::invalid("Vector values must be finite"));
        }
        if self.metric == Metric::Cosine && v.iter().all(|x| *x == 0.0) {
            return Err(ApiError::invalid(
                "Dense vectors must contain at least one non-zero value",
            ));
        }
        Ok(())
    }

    /// Writes records into `namespace` (created on first write); all or nothing.
    pub fn upsert(
        &mut self,
        namespace: &str,
        records: Vec<UpsertRecord>,
    ) -> Result<usize, ApiError> {
        if records.is_empty() || records.len() > MAX_UPSERT {
            return Err(ApiError::invalid(format!(
                "upsert takes 1 to {MAX_UPSERT} vectors, got {}",
                records.len()
            )));
        }
        for r in &records {
            if r.id.is_empty() || r.id.len() > MAX_ID_LEN {
                return Err(ApiError::invalid(format!(
                    "Vector id must be 1 to {MAX_ID_LEN} characters, got {}",
                    r.id.len()
                )));
            }
            self.check_vector(&r.values)?;
            if let Some(m) = &r.metadata {
                check_metadata(&r.id, m)?;
            }
        }
        let n = records.len();
        let ns = self.namespaces.entry(namespace.to_owned()).or_default();
        for r in records {
            let norm = norm(&r.values);
            ns.insert(
                r.id,
                Record {
                    values: r.values,
                    norm,
                    metadata: r.metadata,
                },
            );
        }
        Ok(n)
    }

    /// Exact search of `namespace` (an unknown namespace has no matches), best first,
    /// ties by id.
    pub fn query(
        &self,
        namespace: &str,
        by: QueryBy<'_>,
        top_k: usize,
        include_values: bool,
        include_metadata: bool,
    ) -> Result<Vec<Match>, ApiError> {
        if top_k == 0 || top_k > MAX_TOP_K {
            return Err(ApiError::invalid(format!(
                "topK must be between 1 and {MAX_TOP_K}, got {top_k}"
            )));
        }
        let Some(ns) = self.namespaces.get(namespace) else {
            if let QueryBy::Vector(v) = by {
                self.check_vector(v)?;
            }
            return Ok(Vec::new());
        };
        let query: Vec<f32> = match by {
            QueryBy::Vector(v) => {
                self.check_vector(v)?;
                v.to_vec()
            }
            QueryBy::Id(id) => match ns.get(id) {
                Some(r) => r.values.clone(),
                None => return Ok(Vec::new()),
            },
        };
        let qn = norm(&query);
        let mut scored: Vec<(f32, &String, &Record)> = ns
            .iter()
            .map(|(id, r)| (self.score(&query, qn, r), id, r))
            .collect();
        let lower_is_closer = self.metric == Metric::Euclidean;
        scored.sort_by(|a, b| {
            let by_score = if lower_is_closer {
                a.0.total_cmp(&b.0)
            } else {
                b.0.total_cmp(&a.0)
            };
            by_score.then_with(|| a.1.cmp(b.1))
        });
        scored.truncate(top_k);
        Ok(scored
            .into_iter()
            .map(|(score, id, r)| Match {
                id: id.clone(),
                score,
                values: if include_values {
                    r.values.clone()
                } else {
                    Vec::new()
                },
                metadata: if include_metadata {
                    r.metadata.clone()
                } else {
                    None
                },
            })
            .collect())
    }

    fn score(&self, q: &[f32], qn: f32, r: &Record) -> f32 {
        match self.metric {
            Metric::Cosine => {
                let dot: f32 = q.iter().zip(&r.values).map(|(a, b)| a * b).sum();
                if qn == 0.0 || r.norm == 0.0 {
                    0.0
                } else {
                    dot / (qn * r.norm)
                }
            }
            Metric::Dotproduct => q.iter().zip(&r.values).map(|(a, b)| a * b).sum(),
            Metric::Euclidean => q
                .iter()
                .zip(&r.values)
                .map(|(a, b)| (a - b) * (a - b))
                .sum(),
        }
    }

    /// Deletes `ids` (unknown ids ignored) or the whole namespace. A namespace that does
    /// not exist is a 404, as Pinecone answers.
    pub fn delete(
        &mut self,
        namespace: &str,
        ids: Option<Vec<String>>,
        delete_all: bool,
    ) -> Result<(), ApiError> {
        match (ids, delete_all) {
            (Some(_), true) => Err(ApiError::invalid(
                "ids and deleteAll cannot be used together",
            )),
            (None, false) => Err(ApiError::invalid(
                "one of ids, deleteAll or filter is required",
            )),
            (Some(ids), false) => {
                if ids.len() > MAX_IDS {
                    return Err(ApiError::invalid(format!(
                        "delete takes at most {MAX_IDS} ids"
                    )));
                }
                let ns = self
                    .namespaces
                    .get_mut(namespace)
                    .ok_or_else(|| ApiError::not_found("Namespace not found"))?;
                for id in &ids {
                    ns.remove(id);
                }
                if ns.is_empty() {
                    self.namespaces.remove(namespace);
                }
                Ok(())
            }
            (None, true) => self
                .namespaces
                .remove(namespace)
                .map(drop)
                .ok_or_else(|| ApiError::not_found("Namespace not found")),
        }
    }

    /// One page of ids starting with `prefix`, in byte order, after `token`; the token
    /// of the next page when more remain.
    pub fn list(
        &self,
        namespace: &str,
        prefix: &str,
        limit: usize,
        token: Option<&str>,
    ) -> Result<(Vec<String>, Option<String>), ApiError> {
        if limit == 0 || limit > 1000 {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and 1000, got {limit}"
            )));
        }
        let skip_past = match token {
            Some(t) => {
                let parsed: Token = B64
                    .decode(t)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .ok_or_else(|| ApiError::invalid("Invalid pagination token"))?;
                if parsed.prefix != prefix {
                    return Err(ApiError::invalid(
                        "Pagination token does not match the prefix",
                    ));
                }
                Some(parsed.skip_past)
            }
            None => None,
        };
        let Some(ns) = self.namespaces.get(namespace) else {
            return Ok((Vec::new(), None));
        };
        let mut ids = ns
            .keys()
            .filter(|id| id.starts_with(prefix))
            .filter(|id| skip_past.as_deref().is_none_or(|s| id.as_str() > s));
        let page: Vec<String> = ids.by_ref().take(limit).cloned().collect();
        let next = match (ids.next(), page.last()) {
            (Some(_), Some(last)) => {
                let token = Token {
                    skip_past: last.clone(),
                    prefix: prefix.to_owned(),
                };
                serde_json::to_vec(&token).ok().map(|b| B64.encode(b))
            }
            _ => None,
        };
        Ok((page, next))
    }

    /// The records of `ids` that exist in `namespace`.
    pub fn fetch(
        &self,
        namespace: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Fetched>, ApiError> {
        if ids.is_empty() || ids.len() > MAX_IDS {
            return Err(ApiError::invalid(format!(
                "fetch takes 1 to {MAX_IDS} ids, got {}",
                ids.len()
            )));
        }
        let Some(ns) = self.namespaces.get(namespace) else {
            return Ok(HashMap::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| {
                ns.get(id).map(|r| {
                    (
                        id.clone(),
                        Fetched {
                            id: id.clone(),
                            values: r.values.clone(),
                            metadata: r.metadata.clone(),
                        },
                    )
                })
            })
            .collect())
    }

    /// Record count per namespace.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.namespaces
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect()
    }

    /// The index's dimension.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The index's metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }
}

/// Pinecone's metadata rules: string, number, boolean or list-of-string values, at most
/// 40 KB in all.
fn check_metadata(id: &str, m: &Map<String, Value>) -> Result<(), ApiError> {
    for (k, v) in m {
        let ok = match v {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => true,
            Value::Array(items) => items.iter().all(Value::is_string),
            Value::Null | Value::Object(_) => false,
        };
        if !ok {
            return Err(ApiError::invalid(format!(
                "Metadata value for field {k:?} of vector {id} must be a string, number, boolean or list of strings"
            )));
        }
    }
    let size = serde_json::to_vec(m).map_or(0, |b| b.len());
    if size > MAX_METADATA_BYTES {
        return Err(ApiError::invalid(format!(
            "Metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes per vector"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, values: &[f32]) -> UpsertRecord {
        UpsertRecord {
            id: id.into(),
            values: values.to_vec(),
            metadata: Some(Map::from_iter([("text".to_owned(), Value::from(id))])),
        }
    }

    #[test]
    fn exact_cosine_ranking_per_namespace() {
        let mut ix = IndexData::new(2, Metric::Cosine);
        ix.upsert(
            "a",
            vec![
                rec("x", &[1.0, 0.0]),
                rec("y", &[1.0, 1.0]),
                rec("z", &[-1.0, 0.0]),
            ],
        )
        .unwrap();
        ix.upsert("b", vec![rec("w", &[1.0, 0.0])]).unwrap();
        let m = ix
            .query("a", QueryBy::Vector(&[2.0, 0.1]), 3, false, true)
            .unwrap();
        let ids: Vec<&str> = m.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["x", "y", "z"]);
        assert!((m[2].score + 0.9988).abs() < 1e-3, "{}", m[2].score);
        assert_eq!(m[0].metadata.as_ref().unwrap()["text"], "x");
        assert!(m[0].values.is_empty());
        assert!(
            ix.query("c", QueryBy::Vector(&[1.0, 0.0]), 3, false, false)
                .unwrap()
                .is_empty()
        );
        let by_id = ix.query("a", QueryBy::Id("y"), 1, true, false).unwrap();
        assert_eq!(by_id[0].id, "y");
        assert_eq!(by_id[0].values, vec![1.0, 1.0]);
    }

    #[test]
    fn refuses_what_pinecone_refuses() {
        let mut ix = IndexData::new(2, Metric::Cosine);
        let e = ix
            .upsert("a", vec![rec("x", &[1.0, 0.0, 0.0])])
            .unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("dimension 3"), "{}", e.message);
        assert_eq!(
            ix.upsert("a", vec![rec("x", &[0.0, 0.0])])
                .unwrap_err()
                .status,
            400
        );
        let mut bad = rec("x", &[1.0, 0.0]);
        bad.metadata = Some(Map::from_iter([("n".to_owned(), Value::Null)]));
        assert_eq!(ix.upsert("a", vec![bad]).unwrap_err().status, 400);
        assert_eq!(ix.upsert("a", vec![]).unwrap_err().status, 400);
        assert!(ix.counts().is_empty(), "nothing written by refused upserts");
        assert_eq!(ix.delete("nope", None, true).unwrap_err().status, 404);
        assert_eq!(
            ix.query("a", QueryBy::Vector(&[1.0]), 1, false, false)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn list_pages_with_prefix_then_delete() {
        let mut ix = IndexData::new(1, Metric::Cosine);
        let recs: Vec<UpsertRecord> = (0..25)
            .map(|i| rec(&format!("doc#{i:02}"), &[1.0]))
            .collect();
        ix.upsert("n", recs).unwrap();
        ix.upsert("n", vec![rec("other", &[1.0])]).unwrap();
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let (page, next) = ix.list("n", "doc#", 10, token.as_deref()).unwrap();
            assert!(page.len() <= 10);
            all.extend(page);
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(
            all,
            (0..25).map(|i| format!("doc#{i:02}")).collect::<Vec<_>>()
        );
        assert_eq!(
            ix.list("n", "", 10, Some("garbage")).unwrap_err().status,
            400
        );

        let f = ix.fetch("n", &["doc#03".into(), "missing".into()]).unwrap();
        assert_eq!(f.len(), 1);
        ix.delete("n", Some(vec!["doc#03".into(), "missing".into()]), false)
            .unwrap();
        assert_eq!(ix.counts()["n"], 25);
        ix.delete("n", None, true).unwrap();
        assert!(ix.counts().is_empty());
    }
}
