//! The repository's own synthetic D&B samples (`samples/`) are well-formed and
//! agree with each other: every pull response and NDJSON line is a valid
//! notification, all ten types occur, and the delivery files of `delivery/`
//! match their manifest and the NDJSON file. The acceptance set
//! `../shared/samples`, when present, parses the same way.

use std::collections::BTreeSet;

use dnb_hubspot_bridge::dnb::{BodyFormat, IncomingItem, parse_body};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::*;

const DELIVERY: &str = "DEMO_PORTFOLIO_20250303070000";

fn valid_types(format: BodyFormat, body: &[u8]) -> Vec<String> {
    parse_body(format, body)
        .unwrap()
        .into_iter()
        .map(|item| match item {
            IncomingItem::Valid(valid) => valid.notification_type.as_str().to_string(),
            IncomingItem::Rejected(rejected) => panic!("a sample is rejected: {rejected:?}"),
        })
        .collect()
}

#[test]
fn every_pull_response_and_ndjson_line_is_valid_and_all_ten_types_occur() {
    let mut types = BTreeSet::new();
    let mut pull_responses = 0;
    for entry in std::fs::read_dir(samples_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            let body = std::fs::read(&path).unwrap();
            let value: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(
                value["inquiryDetail"]["reference"], "DEMO_PORTFOLIO",
                "{name}"
            );
            assert!(
                value["transactionDetail"]["transactionID"].is_string(),
                "{name}"
            );
            let found = valid_types(BodyFormat::Json, &body);
            assert!(!found.is_empty(), "{name}");
            types.extend(found);
            pull_responses += 1;
        }
    }
    assert_eq!(pull_responses, 10, "one pull response per type");
    assert_eq!(types.len(), 10, "{types:?}");

    let ndjson = valid_types(BodyFormat::Ndjson, &sample(NDJSON_SAMPLE));
    assert_eq!(ndjson.len(), 21);
    assert_eq!(ndjson.iter().collect::<BTreeSet<_>>().len(), 10);
}

/// CRC-32 (IEEE), as zip stores it for each entry.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

#[test]
fn the_notification_zip_holds_the_ndjson_file_and_matches_its_manifest() {
    let delivery = samples_dir().join("delivery");
    let zip_name = format!("{DELIVERY}_NOTIFICATION_1.zip");
    let zip = std::fs::read(delivery.join(&zip_name)).unwrap();
    let lines = sample(NDJSON_SAMPLE);

    // The zip's one entry is the NDJSON file under the `.txt` name: its central
    // directory records the name, the uncompressed size and the CRC-32 of those bytes.
    let central = zip
        .windows(4)
        .position(|window| window == b"PK\x01\x02")
        .expect("a central directory");
    assert_eq!(
        zip.windows(4)
            .filter(|window| *window == b"PK\x01\x02")
            .count(),
        1,
        "one entry"
    );
    let name_length = u16_at(&zip, central + 28);
    let entry_name = std::str::from_utf8(&zip[central + 46..central + 46 + name_length]).unwrap();
    assert_eq!(entry_name, format!("{DELIVERY}_NOTIFICATION_1.txt"));
    assert_eq!(u16_at(&zip, central + 10), 8, "deflated");
    assert_eq!(u32_at(&zip, central + 24) as usize, lines.len());
    assert_eq!(u32_at(&zip, central + 16), crc32(&lines));

    let header: Value = serde_json::from_slice(
        &std::fs::read(delivery.join(format!("{DELIVERY}_NOTIFICATION_HEADER.json"))).unwrap(),
    )
    .unwrap();
    let header = &header["fileHeader"];
    assert_eq!(header["headerType"], "NOTIFICATION");
    assert_eq!(header["reference"], "DEMO_PORTFOLIO");
    let count = lines.iter().filter(|byte| **byte == b'\n').count();
    assert_eq!(header["totalRecordCount"], count as u64);
    let hash: String = Sha256::digest(&zip)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(
        header["files"],
        serde_json::json!([{"name": zip_name, "hash": hash}])
    );
}

#[test]
fn the_exceptions_file_is_tab_separated_with_its_header_row() {
    let text = std::fs::read_to_string(
        samples_dir()
            .join("delivery")
            .join(format!("{DELIVERY}_EXCEPTIONS_1.txt")),
    )
    .unwrap();
    let mut rows = text
        .lines()
        .map(|line| line.split('\t').collect::<Vec<_>>());
    assert_eq!(rows.next().unwrap(), ["DUNS", "Code", "Information"]);
    let rows: Vec<_> = rows.collect();
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert_eq!(row.len(), 3, "{row:?}");
        assert!(row[0].len() == 9 && row[0].bytes().all(|byte| byte.is_ascii_digit()));
    }
}

#[test]
fn every_file_of_the_shared_acceptance_set_parses_without_rejections() {
    let Some(shared) =
        shared_samples("every_file_of_the_shared_acceptance_set_parses_without_rejections")
    else {
        return;
    };
    let mut types = BTreeSet::new();
    for entry in std::fs::read_dir(shared).unwrap() {
        let path = entry.unwrap().path();
        let format = match path.extension().and_then(|ext| ext.to_str()) {
            Some("json") => BodyFormat::Json,
            Some("ndjson") => BodyFormat::Ndjson,
            _ => continue,
        };
        let found = valid_types(format, &std::fs::read(&path).unwrap());
        assert!(!found.is_empty(), "{}", path.display());
        types.extend(found);
    }
    assert_eq!(types.len(), 10, "{types:?}");
}
