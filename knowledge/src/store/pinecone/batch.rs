//! Cutting an upsert into request bodies within Pinecone's limits: at most 1000 records
//! and 2 MB per request. Records are serialised once and spliced into bodies, so the byte
//! count is exact rather than estimated.

/// Records per upsert request (Pinecone's limit).
pub(crate) const MAX_RECORDS: usize = 1000;
/// Bytes per upsert request (Pinecone's limit: 2 MB).
pub(crate) const MAX_BYTES: usize = 2 * 1024 * 1024;

/// A record too large for any request on its own.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Oversized {
    /// Its position in the input.
    pub index: usize,
    /// Its serialised size.
    pub bytes: usize,
}

/// Request bodies `{"namespace":…,"vectors":[…]}` holding `records` (each already a JSON
/// object) in order, none over `max_records` records or `max_bytes` bytes.
pub(crate) fn bodies(
    namespace: &str,
    records: &[Vec<u8>],
    max_records: usize,
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, Oversized> {
    let head = format!(
        "{{\"namespace\":{},\"vectors\":[",
        serde_json::Value::String(namespace.to_owned())
    );
    let tail = b"]}";
    let empty = head.len() + tail.len();
    let mut out = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let mut count = 0;
    for (index, record) in records.iter().enumerate() {
        if empty + record.len() > max_bytes {
            return Err(Oversized {
                index,
                bytes: record.len(),
            });
        }
        // +1 for the comma before every record but the first.
        let fits =
            count < max_records.max(1) && body.len() + 1 + record.len() + tail.len() <= max_bytes;
        if count > 0 && !fits {
            body.extend_from_slice(tail);
            out.push(std::mem::take(&mut body));
            count = 0;
        }
        if count == 0 {
            body.extend_from_slice(head.as_bytes());
        } else {
            body.push(b',');
        }
        body.extend_from_slice(record);
        count += 1;
    }
    if count > 0 {
        body.extend_from_slice(tail);
        out.push(body);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize, pad: usize) -> Vec<u8> {
        format!("{{\"id\":\"r{i}\",\"p\":\"{}\"}}", "x".repeat(pad)).into_bytes()
    }

    fn ids(body: &[u8]) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["namespace"], "k\"b");
        v["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn cuts_by_count_and_by_bytes_keeping_order() {
        let records: Vec<Vec<u8>> = (0..25).map(|i| record(i, 10)).collect();
        let by_count = bodies("k\"b", &records, 10, MAX_BYTES).unwrap();
        assert_eq!(by_count.len(), 3);
        let all: Vec<String> = by_count.iter().flat_map(|b| ids(b)).collect();
        assert_eq!(all, (0..25).map(|i| format!("r{i}")).collect::<Vec<_>>());

        let limit = 200;
        let by_bytes = bodies("k\"b", &records, 1000, limit).unwrap();
        assert!(by_bytes.len() > 1);
        assert!(by_bytes.iter().all(|b| b.len() <= limit));
        let all: Vec<String> = by_bytes.iter().flat_map(|b| ids(b)).collect();
        assert_eq!(all.len(), 25);
        // Full: the next record would not have fitted.
        assert!(by_bytes[0].len() + 1 + records[0].len() > limit);
    }

    #[test]
    fn nothing_and_oversized() {
        assert!(bodies("k", &[], 10, 100).unwrap().is_empty());
        let records = vec![record(0, 1), record(1, 500)];
        assert_eq!(
            bodies("k", &records, 10, 200),
            Err(Oversized {
                index: 1,
                bytes: records[1].len()
            })
        );
    }
}
