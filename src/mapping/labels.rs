//! Words a salesperson reads instead of D&B jargon: human labels for D&B
//! element paths such as `organization.primaryName`, and readable renderings
//! of element values (phones, addresses, industry codes, revenue, …) instead
//! of raw JSON. Pure functions; the HTML escaping is left to the caller.

use serde_json::{Map, Value};

/// What an absent, empty or null value renders as.
pub const NONE: &str = "(none)";

/// Human labels, keyed by a normalised path (no `organization.` prefix and no
/// `[n]` indexes) or by a single path segment, which names the field wherever
/// it occurs.
const LABELS: &[(&str, &str)] = &[
    ("duns", "D-U-N-S number"),
    ("primaryName", "Company name"),
    ("registeredName", "Registered name"),
    ("tradeStyleNames", "Trade names"),
    ("telephone", "Phone"),
    ("telephoneNumber", "Phone number"),
    ("isdCode", "Country calling code"),
    ("isUnreachable", "Phone unreachable"),
    ("primaryAddress", "Address"),
    ("registeredAddress", "Registered address"),
    ("mailingAddress", "Mailing address"),
    ("streetAddress", "Street address"),
    ("streetAddress.line1", "Street address"),
    ("streetAddress.line2", "Street address (line 2)"),
    ("postalCode", "Postal code"),
    ("addressLocality", "City"),
    ("addressRegion", "Region"),
    ("addressCountry", "Country"),
    ("isRegisteredAddress", "Registered office address"),
    ("language", "Language"),
    ("industryCodes", "Industry"),
    ("websiteAddress", "Website"),
    ("domainName", "Domain"),
    ("numberOfEmployees", "Employees"),
    ("financials", "Revenue"),
    ("yearlyRevenue", "Revenue"),
    ("financialStatementToDate", "Financial year end"),
    ("dunsControlStatus", "D&B record status"),
    ("operatingStatus", "Operating status"),
    ("isMarketable", "Marketable"),
    ("isMailUndeliverable", "Mail undeliverable"),
    ("isTelephoneDisconnected", "Phone disconnected"),
    ("isDelisted", "Delisted"),
    ("corporateLinkage", "Corporate family"),
    ("familytreeRolesPlayed", "Family tree role"),
    (
        "globalUltimateFamilyTreeMembersCount",
        "Family tree members",
    ),
    ("registrationNumbers", "Registration numbers"),
    ("registrationNumber", "Registration number"),
    ("startDate", "Founded"),
];

/// Segments too generic to label alone: they take their parent's label.
const GENERIC_SEGMENTS: &[&str] = &["name", "description", "value", "url", "code"];

/// The human label of a D&B element path, e.g. `organization.telephone` → "Phone".
pub fn label(element_path: &str) -> String {
    let path = normalise(element_path);
    let segments: Vec<&str> = path.split('.').filter(|part| !part.is_empty()).collect();
    let Some((last, parents)) = segments.split_last() else {
        return "Value".to_string();
    };
    if let Some(known) = known_label(&path) {
        return known.to_string();
    }
    if GENERIC_SEGMENTS.contains(last) && !parents.is_empty() {
        return label(&parents.join("."));
    }
    match parents.last() {
        Some(parent) => known_label(&format!("{parent}.{last}")),
        None => None,
    }
    .or_else(|| known_label(last))
    .map(str::to_string)
    .unwrap_or_else(|| humanise(last))
}

/// A value rendered for reading, e.g. a telephone array → "+1 415 555 0100".
pub fn render_value(element_path: &str, value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(text) => text.trim().to_string(),
        Value::Bool(true) => "Yes".to_string(),
        Value::Bool(false) => "No".to_string(),
        Value::Number(number) => render_number(number),
        Value::Array(items) => render_list(element_path, items),
        Value::Object(fields) => render_object(element_path, fields),
    };
    if text.is_empty() {
        NONE.to_string()
    } else {
        text
    }
}

fn normalise(element_path: &str) -> String {
    let path = element_path.trim();
    let path = path.strip_prefix("organization.").unwrap_or(path);
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for character in path.chars() {
        match character {
            '[' => in_index = true,
            ']' => in_index = false,
            _ if !in_index => out.push(character),
            _ => {}
        }
    }
    out
}

fn known_label(key: &str) -> Option<&'static str> {
    LABELS
        .iter()
        .find(|(candidate, _)| *candidate == key)
        .map(|(_, text)| *text)
}

/// `isTelephoneDisconnected` → "Telephone disconnected": camelCase split into
/// words, a leading `is` dropped, the first word capitalised.
fn humanise(segment: &str) -> String {
    let segment = segment.replace("DnB", "Dnb");
    let mut words = split_words(&segment);
    if words.len() > 1 && words[0] == "is" {
        words.remove(0);
    }
    let words: Vec<String> = words
        .into_iter()
        .map(|word| {
            if word == "dnb" {
                "D&B".to_string()
            } else {
                word
            }
        })
        .collect();
    let sentence = words.join(" ");
    let mut characters = sentence.chars();
    match characters.next() {
        Some(first) => first.to_uppercase().chain(characters).collect(),
        None => "Value".to_string(),
    }
}

/// Splits camelCase, snake_case and kebab-case; acronyms stay upper case.
fn split_words(text: &str) -> Vec<String> {
    let characters: Vec<char> = text.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    for (index, &character) in characters.iter().enumerate() {
        if matches!(character, '_' | '-' | ' ') {
            words.push(std::mem::take(&mut current));
            continue;
        }
        let previous = index.checked_sub(1).map(|at| characters[at]);
        let next = characters.get(index + 1);
        let starts_word = character.is_uppercase()
            && previous.is_some_and(|before| {
                !before.is_uppercase() || next.is_some_and(|after| after.is_lowercase())
            });
        if starts_word {
            words.push(std::mem::take(&mut current));
        }
        current.push(character);
    }
    words.push(current);
    words
        .into_iter()
        .filter(|word| !word.is_empty())
        .map(|word| {
            let is_acronym = word.chars().count() > 1 && word.chars().all(char::is_uppercase);
            if is_acronym {
                word
            } else {
                word.to_lowercase()
            }
        })
        .collect()
}

fn render_number(number: &serde_json::Number) -> String {
    let text = number.to_string();
    if text.contains(['e', 'E']) {
        return text;
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let grouped = group_thousands(whole);
    if fraction.trim_end_matches('0').is_empty() {
        grouped
    } else {
        format!("{grouped}.{fraction}")
    }
}

fn group_thousands(whole: &str) -> String {
    let (sign, digits) = match whole.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", whole),
    };
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped}")
}

fn render_list(element_path: &str, items: &[Value]) -> String {
    let rendered: Vec<String> = items
        .iter()
        .map(|item| render_value(element_path, item))
        .filter(|text| text != NONE)
        .collect();
    // Industry descriptions and addresses contain commas themselves.
    let is_industry = normalise(element_path).ends_with("industryCodes");
    let separator = if is_industry || rendered.iter().any(|text| text.contains(',')) {
        "; "
    } else {
        ", "
    };
    rendered.join(separator)
}

fn render_object(element_path: &str, fields: &Map<String, Value>) -> String {
    let text = |key: &str| {
        fields
            .get(key)
            .map(|value| render_value(&format!("{element_path}.{key}"), value))
            .filter(|rendered| rendered != NONE)
    };
    if fields.contains_key("telephoneNumber") {
        render_telephone(fields)
    } else if [
        "streetAddress",
        "addressLocality",
        "addressCountry",
        "postalCode",
    ]
    .iter()
    .any(|key| fields.contains_key(*key))
    {
        render_address(fields)
    } else if fields.contains_key("line1") {
        join_present(&[text("line1"), text("line2"), text("line3")], ", ")
    } else if let Some(revenue) = text("yearlyRevenue") {
        revenue
    } else if fields.contains_key("currency") && fields.contains_key("value") {
        render_money(fields)
    } else if let Some(address) = text("url").or_else(|| text("domainName")) {
        address
    } else if let Some(number) = text("registrationNumber") {
        match text("typeDescription") {
            Some(kind) => format!("{number} ({kind})"),
            None => number,
        }
    } else if let Some(plain) = text("name")
        .or_else(|| text("description"))
        .or_else(|| text("value"))
    {
        plain
    } else {
        render_pairs(element_path, fields)
    }
}

fn render_telephone(fields: &Map<String, Value>) -> String {
    let number = scalar_text(fields.get("telephoneNumber"));
    let country = scalar_text(fields.get("isdCode"));
    let national = if country == "1" && number.len() == 10 && is_digits(&number) {
        // North American numbers have a fixed 3-3-4 shape; others vary, so they stay as given.
        format!("{} {} {}", &number[..3], &number[3..6], &number[6..])
    } else {
        number
    };
    let mut phone = if country.is_empty() {
        national
    } else {
        format!("+{} {national}", country.trim_start_matches('+'))
    };
    if fields.get("isUnreachable") == Some(&Value::Bool(true)) {
        phone.push_str(" (unreachable)");
    }
    phone
}

fn render_address(fields: &Map<String, Value>) -> String {
    let part = |key: &str| {
        fields
            .get(key)
            .map(|value| render_value(key, value))
            .filter(|text| text != NONE)
    };
    let city = part("addressLocality");
    let locality = join_present(&[part("postalCode"), city.clone()], " ");
    let region = part("addressRegion").filter(|region| Some(region) != city.as_ref());
    join_present(
        &[
            part("streetAddress"),
            Some(locality).filter(|text| !text.is_empty()),
            region,
            part("addressCountry"),
        ],
        ", ",
    )
}

fn render_money(fields: &Map<String, Value>) -> String {
    let amount = match fields.get("value") {
        Some(Value::Number(number)) if number.is_f64() => number
            .as_f64()
            .map(|value| {
                let text = format!("{value:.2}");
                let (whole, fraction) = text.split_once('.').unwrap_or((&text, "00"));
                format!("{}.{fraction}", group_thousands(whole))
            })
            .unwrap_or_default(),
        Some(value) => render_value("value", value),
        None => String::new(),
    };
    join_present(
        &[Some(amount), Some(scalar_text(fields.get("currency")))],
        " ",
    )
}

/// Fallback for unknown objects: "Label: value; Label: value", codes left out.
fn render_pairs(element_path: &str, fields: &Map<String, Value>) -> String {
    // Sorted by key so the text does not depend on serde_json's map order feature.
    let mut keys: Vec<&String> = fields.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|key| (key, &fields[key]))
        .filter(|(key, _)| !is_code_noise(key))
        .map(|(key, value)| {
            let path = format!("{element_path}.{key}");
            (label(&path), render_value(&path, value))
        })
        .filter(|(_, text)| text != NONE)
        .map(|(name, text)| format!("{name}: {text}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// D&B's internal code numbers and ordering hints mean nothing to a salesperson.
fn is_code_noise(key: &str) -> bool {
    key.to_ascii_lowercase().ends_with("dnbcode")
        || matches!(key, "priority" | "isoAlpha2Code" | "abbreviatedName")
}

fn join_present(parts: &[Option<String>], separator: &str) -> String {
    parts
        .iter()
        .flatten()
        .filter(|text| !text.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(separator)
}

fn scalar_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.trim().to_string(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    }
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_element_path_in_the_samples_has_a_human_label() {
        let expected = [
            ("organization.primaryName", "Company name"),
            ("organization.telephone", "Phone"),
            ("organization.primaryAddress", "Address"),
            ("organization.primaryAddress.postalCode", "Postal code"),
            (
                "organization.primaryAddress.streetAddress.line1",
                "Street address",
            ),
            (
                "organization.primaryAddress.streetAddress.line2",
                "Street address (line 2)",
            ),
            ("organization.primaryAddress.addressLocality.name", "City"),
            ("organization.primaryAddress.addressRegion", "Region"),
            ("organization.primaryAddress.addressCountry", "Country"),
            ("organization.industryCodes", "Industry"),
            ("organization.websiteAddress", "Website"),
            ("organization.tradeStyleNames", "Trade names"),
            ("organization.numberOfEmployees", "Employees"),
            ("organization.financials", "Revenue"),
            ("organization.financials.yearlyRevenue", "Revenue"),
            ("organization.registrationNumbers", "Registration numbers"),
            ("organization.registeredName", "Registered name"),
            ("organization.startDate", "Founded"),
            ("organization.dunsControlStatus.isMarketable", "Marketable"),
            (
                "organization.dunsControlStatus.operatingStatus",
                "Operating status",
            ),
            (
                "organization.dunsControlStatus.isTelephoneDisconnected",
                "Phone disconnected",
            ),
            (
                "organization.corporateLinkage.globalUltimateFamilyTreeMembersCount",
                "Family tree members",
            ),
            (
                "organization.corporateLinkage.familytreeRolesPlayed",
                "Family tree role",
            ),
            ("organization.duns", "D-U-N-S number"),
        ];
        for (path, text) in expected {
            assert_eq!(label(path), text, "{path}");
        }
    }

    #[test]
    fn unknown_paths_get_words_from_their_last_segment() {
        assert_eq!(
            label("organization.corporateLinkage.headQuarter"),
            "Head quarter"
        );
        assert_eq!(
            label("organization.dunsControlStatus.isOutOfBusiness"),
            "Out of business"
        );
        assert_eq!(label("organization.typeDnBCode"), "Type D&B code");
        assert_eq!(label("organization.websiteURL"), "Website URL");
        assert_eq!(label("organization.some_snake_case"), "Some snake case");
        assert_eq!(
            label("organization.telephone[0].isdCode"),
            "Country calling code"
        );
        assert_eq!(label(""), "Value");
    }

    #[test]
    fn empty_values_render_as_none() {
        for empty in [
            json!(null),
            json!([]),
            json!(""),
            json!("  "),
            json!({}),
            json!([null]),
        ] {
            assert_eq!(
                render_value("organization.primaryName", &empty),
                NONE,
                "{empty}"
            );
        }
    }

    #[test]
    fn scalars_render_plainly() {
        assert_eq!(
            render_value("organization.primaryName", &json!("Northwind Group Inc.")),
            "Northwind Group Inc."
        );
        assert_eq!(
            render_value(
                "organization.corporateLinkage.globalUltimateFamilyTreeMembersCount",
                &json!(1889)
            ),
            "1,889"
        );
        assert_eq!(
            render_value("organization.x", &json!(-1234567)),
            "-1,234,567"
        );
        assert_eq!(render_value("organization.x", &json!(0.25)), "0.25");
        assert_eq!(
            render_value("organization.x", &json!(5000000.0)),
            "5,000,000"
        );
        assert_eq!(
            render_value("organization.dunsControlStatus.isMarketable", &json!(true)),
            "Yes"
        );
        assert_eq!(
            render_value("organization.dunsControlStatus.isMarketable", &json!(false)),
            "No"
        );
    }

    #[test]
    fn telephones_show_the_country_code_and_readable_groups() {
        let phones = json!([
            {"telephoneNumber": "4155550100", "isdCode": "1", "isUnreachable": false},
            {"telephoneNumber": "5555551000", "isdCode": "86", "isUnreachable": true}
        ]);
        assert_eq!(
            render_value("organization.telephone", &phones),
            "+1 415 555 0100, +86 5555551000 (unreachable)"
        );
        assert_eq!(
            render_value(
                "organization.telephone",
                &json!([{"telephoneNumber": "0301234"}])
            ),
            "0301234"
        );
    }

    #[test]
    fn industry_codes_show_their_descriptions() {
        let codes = json!([
            {"code": "484121", "description": "General Freight Trucking, Long-Distance, Truckload",
             "typeDescription": "North American Industry Classification System 2017",
             "typeDnBCode": 30832, "priority": 1},
            {"code": "999990", "description": "Unclassified Establishments", "priority": 2}
        ]);
        assert_eq!(
            render_value("organization.industryCodes", &codes),
            "General Freight Trucking, Long-Distance, Truckload; Unclassified Establishments"
        );
    }

    #[test]
    fn websites_trade_names_and_employees_show_their_main_value() {
        assert_eq!(
            render_value(
                "organization.websiteAddress",
                &json!([{"url": "https://www.wide.io", "domainName": "wide.io"}])
            ),
            "https://www.wide.io"
        );
        assert_eq!(
            render_value(
                "organization.websiteAddress",
                &json!([{"domainName": "wide.io"}])
            ),
            "wide.io"
        );
        assert_eq!(
            render_value(
                "organization.tradeStyleNames",
                &json!([{"name": "Margie Software", "priority": 1},
                        {"name": "Margie Labs", "priority": 2}])
            ),
            "Margie Software, Margie Labs"
        );
        assert_eq!(
            render_value(
                "organization.numberOfEmployees",
                &json!([{"value": 28000, "informationScopeDescription": "Consolidated",
                         "reliabilityDescription": "Actual"}])
            ),
            "28,000"
        );
    }

    #[test]
    fn addresses_read_like_an_envelope() {
        let address = json!({
            "language": {"description": "English", "dnbCode": 331},
            "addressCountry": {"name": "United States", "isoAlpha2Code": "US"},
            "addressLocality": {"name": "San Francisco"},
            "addressRegion": {"name": "California", "abbreviatedName": "CA"},
            "postalCode": "94107",
            "streetAddress": {"line1": "500 Harbour Way", "line2": "Floor 3"},
            "isRegisteredAddress": true
        });
        assert_eq!(
            render_value("organization.primaryAddress", &address),
            "500 Harbour Way, Floor 3, 94107 San Francisco, California, United States"
        );
        let same_region = json!({
            "addressCountry": {"name": "Brazil"}, "addressLocality": {"name": "São Paulo"},
            "addressRegion": {"name": "São Paulo"}, "postalCode": null,
            "streetAddress": {"line1": "966 Bahnhofstrasse", "line2": null}
        });
        assert_eq!(
            render_value("organization.primaryAddress", &same_region),
            "966 Bahnhofstrasse, São Paulo, Brazil"
        );
    }

    #[test]
    fn revenue_shows_amount_and_currency() {
        let financials = json!([{"financialStatementToDate": "2023-12-31",
            "unitCode": "Single Units",
            "yearlyRevenue": [{"value": 57066295.52, "currency": "USD"}]}]);
        assert_eq!(
            render_value("organization.financials", &financials),
            "57,066,295.52 USD"
        );
        assert_eq!(
            render_value(
                "organization.financials.yearlyRevenue",
                &json!([{"value": 10026333079u64, "currency": "EUR"}])
            ),
            "10,026,333,079 EUR"
        );
    }

    #[test]
    fn status_and_registration_objects_show_their_words_not_codes() {
        assert_eq!(
            render_value(
                "organization.dunsControlStatus.operatingStatus",
                &json!({"description": "Out of Business", "dnbCode": 403})
            ),
            "Out of Business"
        );
        assert_eq!(
            render_value(
                "organization.registrationNumbers",
                &json!([{"registrationNumber": "64490595",
                         "typeDescription": "Local registration number", "typeDnBCode": 99999,
                         "isPreferredRegistrationNumber": true}])
            ),
            "64490595 (Local registration number)"
        );
    }

    #[test]
    fn other_objects_render_as_labelled_pairs_without_braces() {
        let status = json!({"operatingStatus": {"description": "Active", "dnbCode": 9074},
            "isMarketable": true, "isDelisted": false});
        assert_eq!(
            render_value("organization.dunsControlStatus", &status),
            "Delisted: No; Marketable: Yes; Operating status: Active"
        );
        let linkage = json!({
            "familytreeRolesPlayed": [{"description": "Global Ultimate", "dnbCode": 12775}],
            "globalUltimateFamilyTreeMembersCount": 1246
        });
        assert_eq!(
            render_value("organization.corporateLinkage", &linkage),
            "Family tree role: Global Ultimate; Family tree members: 1,246"
        );
        assert_eq!(render_value("organization.x", &json!(["a", "b"])), "a, b");
    }
}
