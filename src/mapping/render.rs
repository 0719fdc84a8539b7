//! The text a salesperson sees in HubSpot for D&B notifications: the subject
//! and body of a task, a timeline note covering one or several notifications
//! of one DUNS, and the task's due date. Pure functions: no I/O and no clock,
//! the current time is an argument. Every body ends with a plain-text marker
//! per notification, so the service can search HubSpot for what it already
//! created before creating it again.

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Days, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use crate::dnb::{Notification, NotificationType};
use crate::mapping::escape_html;
use crate::mapping::labels::{label, render_value};

/// The longest HubSpot note body (`hs_note_body`); task bodies keep to it too.
pub const BODY_LIMIT: usize = 65_536;
/// The longest task subject this module writes, in characters.
pub const SUBJECT_LIMIT: usize = 120;
const NAME_LIMIT: usize = 60;
const TITLE_NAME_LIMIT: usize = 200;
const VALUE_LIMIT: usize = 1_000;
const LISTED_DUPLICATES_LIMIT: usize = 20;
const ID_LIMIT: usize = 40;

/// The HubSpot company the text is about, as the caller resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyView {
    /// The HubSpot company id.
    pub id: String,
    /// The HubSpot company name, if it has one.
    pub name: Option<String>,
    /// The DUNS the company carries.
    pub duns: String,
    /// Other HubSpot companies carrying the same DUNS (likely duplicates).
    pub other_ids_with_same_duns: Vec<String>,
}

/// What became of the successor DUNS of a TRANSFER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuccessorView {
    /// D&B did not name the successor.
    Unknown,
    /// No HubSpot company has the successor DUNS, so it was moved to this company.
    Free {
        /// The successor DUNS.
        duns: String,
    },
    /// Another HubSpot company already has the successor DUNS.
    TakenBy {
        /// The successor DUNS.
        duns: String,
        /// The HubSpot id of the company that has it.
        company_id: String,
        /// Its name, if it has one.
        company_name: Option<String>,
    },
}

/// The subject and HTML body of a HubSpot task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskText {
    /// `hs_task_subject`: plain text, at most [`SUBJECT_LIMIT`] characters.
    pub subject: String,
    /// `hs_task_body`: HTML ending with the notification's [`marker`].
    pub body_html: String,
}

/// The plain-text marker of a notification that the service searches HubSpot for.
pub fn marker(notification_id: i64) -> String {
    format!("{MARKER_PREFIX}{notification_id}")
}

const MARKER_PREFIX: &str = "dnb-hubspot-bridge notification ";

/// Whether `body` carries the marker of exactly this notification: the number after the
/// marker's words must end there (`notification 1` is not found in `notification 12`).
pub fn carries_marker(body: &str, notification_id: i64) -> bool {
    let wanted = notification_id.to_string();
    body.match_indices(MARKER_PREFIX).any(|(at, prefix)| {
        let digits: String = body[at + prefix.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits == wanted
    })
}

/// The task for one notification: a subject readable at a glance and a body
/// saying what happened, to which company, when, what changed and what to do.
pub fn task_text(
    notification_id: i64,
    notification: &Notification,
    company: &CompanyView,
    successor: &SuccessorView,
) -> TaskText {
    let name = company_name(company, notification);
    let wording = wording(notification, &shorten(&name, NAME_LIMIT), successor);
    let mut pieces = vec![
        Piece::Block(paragraph(&wording.summary)),
        Piece::Block(format!(
            "<p><strong>What to do:</strong> {}</p>",
            escape_html(&wording.advice)
        )),
        Piece::Block(facts(company, notification)),
    ];
    pieces.extend(duplicates_block(company));
    let details = detail_items(notification, &mut HashSet::new());
    if !details.is_empty() {
        pieces.push(Piece::Block(format!(
            "<p><strong>{}</strong></p>",
            details_title(notification.notification_type)
        )));
        pieces.extend(details);
    }
    TaskText {
        subject: shorten(&wording.subject, SUBJECT_LIMIT),
        body_html: assemble(&pieces, &markers(&[notification_id])),
    }
}

/// One notification's part of a note, with what became of it.
#[derive(Debug, Clone)]
pub struct NoteEntry<'a> {
    /// Its journal id (the note carries its marker).
    pub id: i64,
    /// The notification.
    pub notification: &'a Notification,
    /// The TRANSFER successor as this notification resolved it.
    pub successor: SuccessorView,
    /// What the company's state made of it.
    pub remarks: Remarks,
}

/// What happened to a notification beyond its own content, said in its paragraph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remarks {
    /// It is older than the company's last alert (delivered at this time): it changed no field.
    pub late_behind: Option<DateTime<Utc>>,
    /// A task for this kind of alert is already open on the company, so none was created.
    pub task_already_open: bool,
    /// A newer notification of this type already reversed it, so no task was created.
    pub reversed_by: Option<(NotificationType, DateTime<Utc>)>,
    /// Open tasks of the alert it reverses that it completed.
    pub completed_tasks: usize,
}

/// One timeline note for notifications of one company handled together, in the
/// given order, each paragraph worded from its own notification; repeated and
/// no-op changes are shown once or not at all. Markers are never cut, so
/// callers keep a note to at most about 1,400 notifications (their markers
/// alone would otherwise exceed [`BODY_LIMIT`]).
pub fn note_html(entries: &[NoteEntry<'_>], company: &CompanyView) -> String {
    let mut seen = HashSet::new();
    let notifications: Vec<&Notification> =
        entries.iter().map(|entry| entry.notification).collect();
    let mut pieces = vec![note_title(&notifications, company)];
    pieces.extend(duplicates_block(company));
    for entry in entries {
        let notification = entry.notification;
        let name = shorten(&company_name(company, notification), NAME_LIMIT);
        let wording = wording(notification, &name, &entry.successor);
        pieces.push(Piece::Heading(format!(
            "<p><strong>{}</strong> · {}</p>",
            escape_html(wording.heading),
            when(notification.delivered_at)
        )));
        pieces.push(Piece::Block(paragraph(&wording.summary)));
        pieces.extend(remarks(notification.notification_type, &entry.remarks));
        pieces.extend(detail_items(notification, &mut seen));
    }
    let ids: Vec<i64> = entries.iter().map(|entry| entry.id).collect();
    assemble(&pieces, &markers(&ids))
}

/// The sentences a note adds for what the company's state made of a notification.
fn remarks(notification_type: NotificationType, remarks: &Remarks) -> Vec<Piece> {
    let mut said = Vec::new();
    if let Some(newer) = remarks.late_behind {
        said.push(format!(
            "This alert arrived late: the company already shows a newer D&B alert (from {}), \
             so nothing that a newer alert set was changed.",
            when(newer)
        ));
    }
    if let Some((reverser, at)) = remarks.reversed_by {
        let since = match reverser {
            NotificationType::Reviewed => "D&B has since finished its review",
            _ => "D&B has since restored this company's record",
        };
        said.push(format!(
            "{since} (alert of {}), so no task was created.",
            when(at)
        ));
    }
    if remarks.task_already_open {
        said.push(format!(
            "The task from an earlier {} alert is still open, so this alert is added to the \
             company's notes instead of a second task.",
            alert_name(notification_type)
        ));
    }
    if remarks.completed_tasks > 0 {
        let reversed =
            super::lifecycle::reversed_type(notification_type).map_or("earlier", alert_name);
        said.push(match remarks.completed_tasks {
            1 => format!("The open task from the earlier {reversed} alert was marked completed."),
            count => format!(
                "The {count} open tasks from earlier {reversed} alerts were marked completed."
            ),
        });
    }
    said.iter()
        .map(|sentence| Piece::Block(format!("<p><em>{}</em></p>", escape_html(sentence))))
        .collect()
}

/// A type's alert in a few plain words, for sentences such as "an earlier … alert".
fn alert_name(notification_type: NotificationType) -> &'static str {
    use NotificationType::*;
    match notification_type {
        Update => "data change",
        Delete => "deletion",
        Transfer => "transfer",
        Seed => "monitoring start",
        FullProduct => "full profile",
        Undelete => "record restored",
        Reviewed => "review finished",
        UnderReview => "under-review",
        Exit => "left monitoring",
        Removed => "removed from monitoring",
    }
}

/// 09:00 local time on the next Monday to Friday after today in `time_zone`
/// (IANA or HubSpot names such as "US/Eastern"; unknown names mean UTC).
pub fn next_business_day(now: DateTime<Utc>, time_zone: &str) -> DateTime<Utc> {
    let zone: Tz = time_zone.trim().parse().unwrap_or(Tz::UTC);
    let today = now.with_timezone(&zone).date_naive();
    let days_ahead = match today.weekday() {
        Weekday::Fri => 3,
        Weekday::Sat => 2,
        _ => 1,
    };
    let day = today
        .checked_add_days(Days::new(days_ahead))
        .unwrap_or(today);
    day.and_hms_opt(9, 0, 0)
        .and_then(|local| {
            // A daylight-saving gap can swallow 09:00; an hour later exists then.
            zone.from_local_datetime(&local).earliest().or_else(|| {
                zone.from_local_datetime(&(local + TimeDelta::hours(1)))
                    .earliest()
            })
        })
        .map(|local| local.with_timezone(&Utc))
        .unwrap_or(now + TimeDelta::days(1))
}

/// The type-specific words of one notification.
struct Wording {
    /// The task subject, company name included.
    subject: String,
    /// The short heading of the notification in a note.
    heading: &'static str,
    /// What happened, in plain words.
    summary: String,
    /// What the salesperson should do.
    advice: String,
}

fn wording(notification: &Notification, name: &str, successor: &SuccessorView) -> Wording {
    use NotificationType::*;
    let (subject, heading, summary, advice) = match notification.notification_type {
        Update => (
            format!("{name}: {} changed (D&B)", changed_fields(notification)),
            "Company data changed",
            "D&B reported new values for this company's data.".to_string(),
            "Check the changes and update deals, contacts and outreach where they matter \
             (for example a new name, address or phone number)."
                .to_string(),
        ),
        Delete => (
            format!("{name} may be out of business (D&B)"),
            "Record deleted: the company may be out of business",
            "D&B deleted this company's record. This usually means the company has gone out \
             of business; sometimes the record was only a duplicate."
                .to_string(),
            "Confirm whether the company has closed (call them, check their website or the \
             company register). If it has, update the deal pipeline: close or re-qualify open \
             deals and stop outreach. If it is still trading, tell your D&B administrator."
                .to_string(),
        ),
        Transfer => transfer_wording(name, successor),
        Seed => (
            format!("{name}: D&B monitoring started"),
            "D&B monitoring started",
            "D&B started monitoring this company and sent its current profile.".to_string(),
            "No action needed: the company fields were filled in from D&B. Correct them if \
             you know better."
                .to_string(),
        ),
        FullProduct => (
            format!("{name}: full D&B profile received"),
            "Full D&B profile received",
            "D&B sent this company's full current profile.".to_string(),
            "No action needed: the company fields were refreshed from D&B. Correct them if \
             you know better."
                .to_string(),
        ),
        Undelete => (
            format!("{name} is active again (D&B record restored)"),
            "Record restored: the company is active again",
            "D&B restored this company's deleted record, so D&B considers it active again."
                .to_string(),
            "Treat the company as active again: reopen or re-qualify deals that were closed \
             because of the deletion."
                .to_string(),
        ),
        Reviewed => (
            format!("{name}: D&B review finished"),
            "D&B review finished",
            "D&B finished reviewing this company's record; its D&B data is current again."
                .to_string(),
            "No action needed. Check any values D&B changed.".to_string(),
        ),
        UnderReview => (
            format!("{name} is under D&B review: treat its data with care"),
            "Under review by D&B",
            "D&B is reviewing this company's record. Its D&B data may be out of date or \
             change until the review ends."
                .to_string(),
            "Treat this company's D&B data with care until D&B finishes the review. No other \
             action needed."
                .to_string(),
        ),
        Exit => (
            format!("{name} left D&B monitoring (coverage lost, not closed)"),
            "Left D&B monitoring (coverage lost)",
            "The D-U-N-S number left D&B monitoring (coverage lost). This does not mean the \
             company closed."
                .to_string(),
            coverage_lost_advice(),
        ),
        Removed => (
            format!("{name} removed from D&B monitoring (coverage lost, not closed)"),
            "Removed from D&B monitoring (coverage lost)",
            "D&B removed the D-U-N-S number from monitoring (coverage lost). This does not \
             mean the company closed."
                .to_string(),
            coverage_lost_advice(),
        ),
    };
    Wording {
        subject,
        heading,
        summary,
        advice,
    }
}

/// The fields of a [`Wording`] in order: subject, heading, summary, advice.
type WordingParts = (String, &'static str, String, String);

fn transfer_wording(name: &str, successor: &SuccessorView) -> WordingParts {
    let heading = "Moved to another D-U-N-S number";
    let moved = "D&B transferred this company's record to another D-U-N-S number.";
    match successor {
        SuccessorView::Unknown => (
            format!("{name} moved to a new D-U-N-S number (D&B)"),
            heading,
            format!("{moved} D&B did not say which number replaces it."),
            "Find the company's new D-U-N-S number in D&B (it may have merged or been \
             acquired) and update this record."
                .to_string(),
        ),
        SuccessorView::Free { duns } => (
            format!("{name} moved to a new D-U-N-S number (D&B)"),
            heading,
            format!(
                "{moved} The new number is {duns}. No other HubSpot company has it, so this \
                 company's D-U-N-S number was moved to {duns}."
            ),
            format!("Check that the company details still match D&B's record for {duns}."),
        ),
        SuccessorView::TakenBy {
            duns,
            company_id,
            company_name,
        } => {
            let other = company_name
                .as_deref()
                .map(str::trim)
                .filter(|other| !other.is_empty())
                .map(|other| shorten(other, NAME_LIMIT))
                .unwrap_or_else(|| format!("HubSpot company {company_id}"));
            (
                format!("{name} may have merged with {other} (D&B)"),
                heading,
                format!(
                    "{moved} The new number is {duns}, which already belongs to {other} \
                     (HubSpot record {company_id}): a possible merge with {other}."
                ),
                format!(
                    "Check whether {name} and {other} merged or are the same company. If so, \
                     merge the two HubSpot records and move open deals to the surviving one; \
                     if not, tell your D&B administrator."
                ),
            )
        }
    }
}

fn coverage_lost_advice() -> String {
    "Do not treat the company as closed. Ask your D&B administrator whether it should be \
     monitored again; until then, D&B changes for this company will not reach HubSpot."
        .to_string()
}

fn details_title(notification_type: NotificationType) -> &'static str {
    match notification_type {
        NotificationType::Seed | NotificationType::FullProduct => "D&amp;B profile",
        _ => "What changed",
    }
}

/// One changed element, rendered; previous and current differ.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Change {
    path: String,
    label: String,
    previous: String,
    current: String,
}

fn effective_changes(notification: &Notification) -> Vec<Change> {
    notification
        .elements
        .iter()
        .map(|element| Change {
            path: element.element.clone(),
            label: label(&element.element),
            previous: shorten(
                &render_value(&element.element, &element.previous),
                VALUE_LIMIT,
            ),
            current: shorten(
                &render_value(&element.element, &element.current),
                VALUE_LIMIT,
            ),
        })
        // Equal renderings are no-ops to a reader, even when D&B-internal codes differ.
        .filter(|change| change.previous != change.current)
        .collect()
}

/// "Company name, Phone and 3 more", or "company data" when nothing changed.
fn changed_fields(notification: &Notification) -> String {
    let mut labels: Vec<String> = Vec::new();
    for change in effective_changes(notification) {
        if !labels.contains(&change.label) {
            labels.push(change.label);
        }
    }
    match labels.len() {
        0 => "company data".to_string(),
        1 | 2 => labels.join(" and "),
        count => format!("{}, {} and {} more", labels[0], labels[1], count - 2),
    }
}

/// Profile lines for SEED and FULL_PRODUCT, change lines for the others.
fn detail_items(notification: &Notification, seen: &mut HashSet<Change>) -> Vec<Piece> {
    match notification.notification_type {
        NotificationType::Seed | NotificationType::FullProduct => profile_items(notification),
        _ => effective_changes(notification)
            .into_iter()
            .filter(|change| seen.insert(change.clone()))
            .map(|change| {
                Piece::Item(format!(
                    "<li><strong>{}</strong>: {} → {}</li>",
                    escape_html(&change.label),
                    escape_html(&change.previous),
                    escape_html(&change.current)
                ))
            })
            .collect(),
    }
}

const PROFILE_FIELDS: [&str; 7] = [
    "primaryName",
    "primaryAddress",
    "telephone",
    "websiteAddress",
    "industryCodes",
    "numberOfEmployees",
    "financials",
];

fn profile_items(notification: &Notification) -> Vec<Piece> {
    PROFILE_FIELDS
        .iter()
        .filter_map(|field| {
            let value = notification.organization.get(field)?;
            let path = format!("organization.{field}");
            Some(Piece::Item(format!(
                "<li><strong>{}</strong>: {}</li>",
                escape_html(&label(&path)),
                escape_html(&shorten(&render_value(&path, value), VALUE_LIMIT))
            )))
        })
        .collect()
}

/// The HubSpot name, else D&B's name for the company, else its DUNS.
fn company_name(company: &CompanyView, notification: &Notification) -> String {
    known_name(company, notification).unwrap_or_else(|| format!("D-U-N-S {}", notification.duns))
}

/// The HubSpot name, else D&B's name for the company, if either is known.
fn known_name(company: &CompanyView, notification: &Notification) -> Option<String> {
    company
        .name
        .as_deref()
        .or_else(|| notification.organization.get("primaryName")?.as_str())
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| shorten(name, TITLE_NAME_LIMIT))
}

fn note_title(notifications: &[&Notification], company: &CompanyView) -> Piece {
    let alerts = if notifications.len() == 1 {
        "D&amp;B alert"
    } else {
        "D&amp;B alerts"
    };
    let duns = escape_html(&company.duns);
    let name = notifications
        .iter()
        .find_map(|notification| known_name(company, notification));
    Piece::Block(match name {
        Some(name) => format!(
            "<p><strong>{alerts} for {}</strong> (D-U-N-S {duns})</p>",
            escape_html(&name)
        ),
        None => format!("<p><strong>{alerts} for D-U-N-S {duns}</strong></p>"),
    })
}

/// Company name (when known), DUNS and when D&B reported it.
fn facts(company: &CompanyView, notification: &Notification) -> String {
    let name = known_name(company, notification)
        .map(|name| format!("Company: {}<br>", escape_html(&name)))
        .unwrap_or_default();
    format!(
        "<p>{name}D-U-N-S number: {}<br>Reported by D&amp;B: {}</p>",
        notification.duns,
        when(notification.delivered_at),
    )
}

fn duplicates_block(company: &CompanyView) -> Option<Piece> {
    let others = &company.other_ids_with_same_duns;
    if others.is_empty() {
        return None;
    }
    let mut listed: Vec<String> = others
        .iter()
        .take(LISTED_DUPLICATES_LIMIT)
        .map(|id| shorten(id, ID_LIMIT))
        .collect();
    if others.len() > LISTED_DUPLICATES_LIMIT {
        listed.push(format!(
            "and {} more",
            others.len() - LISTED_DUPLICATES_LIMIT
        ));
    }
    let (count, verb) = match others.len() {
        1 => ("1 other HubSpot company".to_string(), "has"),
        many => (format!("{many} other HubSpot companies"), "have"),
    };
    Some(Piece::Block(format!(
        "<p><strong>Possible duplicates:</strong> {count} {verb} the same D-U-N-S number \
         (record IDs {}). Check whether they should be merged with this one.</p>",
        escape_html(&listed.join(", "))
    )))
}

fn markers(notification_ids: &[i64]) -> String {
    notification_ids
        .iter()
        .map(|id| format!("<p>{}</p>", marker(*id)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn paragraph(text: &str) -> String {
    format!("<p>{}</p>", escape_html(text))
}

/// "13 May 2024, 08:01 UTC".
fn when(time: DateTime<Utc>) -> String {
    time.format("%-d %B %Y, %H:%M UTC").to_string()
}

/// Cuts text to `limit` characters, the last one an ellipsis.
fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut short: String = text.chars().take(limit.saturating_sub(1)).collect();
    short.push('…');
    short
}

/// One complete HTML element of a body: truncation only ever cuts between pieces.
enum Piece {
    /// A notification's heading (counted as an alert when cut).
    Heading(String),
    /// Any other paragraph.
    Block(String),
    /// A list item; consecutive items share one `<ul>`.
    Item(String),
}

impl Piece {
    fn html(&self) -> &str {
        match self {
            Piece::Heading(html) | Piece::Block(html) | Piece::Item(html) => html,
        }
    }
}

/// The pieces and then the markers, cut to [`BODY_LIMIT`] with a visible notice;
/// the markers are always kept whole.
fn assemble(pieces: &[Piece], markers: &str) -> String {
    let room = BODY_LIMIT.saturating_sub(length(markers) + 1);
    let (complete, cut_at) = render_pieces(pieces, room);
    if cut_at == pieces.len() {
        return join_present(&[complete, markers.to_string()]);
    }
    let notice_room = length(&truncation_notice(pieces)) + 1;
    let (kept, cut_at) = render_pieces(pieces, room.saturating_sub(notice_room));
    join_present(&[
        kept,
        truncation_notice(&pieces[cut_at..]),
        markers.to_string(),
    ])
}

/// Renders the longest prefix of pieces fitting `budget`; returns it and where it stopped.
fn render_pieces(pieces: &[Piece], budget: usize) -> (String, usize) {
    const LIST_END: &str = "</ul>";
    let mut html = String::new();
    let mut used = 0;
    let mut list_open = false;
    let mut cut_at = pieces.len();
    for (index, piece) in pieces.iter().enumerate() {
        let is_item = matches!(piece, Piece::Item(_));
        let transition = match (list_open, is_item) {
            (false, true) => "<ul>\n",
            (true, false) => "</ul>\n",
            _ => "",
        };
        let addition = format!("{transition}{}\n", piece.html());
        let closing = if is_item { LIST_END.len() } else { 0 };
        if used + length(&addition) + closing > budget {
            cut_at = index;
            break;
        }
        used += length(&addition);
        html.push_str(&addition);
        list_open = is_item;
    }
    if list_open {
        html.push_str(LIST_END);
    }
    (html.trim_end_matches('\n').to_string(), cut_at)
}

fn truncation_notice(cut: &[Piece]) -> String {
    let changes = cut
        .iter()
        .filter(|piece| matches!(piece, Piece::Item(_)))
        .count();
    let alerts = cut
        .iter()
        .filter(|piece| matches!(piece, Piece::Heading(_)))
        .count();
    let mut parts = Vec::new();
    if changes > 0 {
        parts.push(plural(changes, "more change", "more changes"));
    }
    if alerts > 0 {
        parts.push(plural(alerts, "more D&amp;B alert", "more D&amp;B alerts"));
    }
    if parts.is_empty() {
        return "<p>… (truncated)</p>".to_string();
    }
    format!("<p>… (truncated: {})</p>", parts.join(", "))
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

fn join_present(parts: &[String]) -> String {
    parts
        .iter()
        .filter(|part| !part.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Length in UTF-16 code units: never less than the character count, so the
/// limit holds whichever way HubSpot counts.
fn length(text: &str) -> usize {
    text.encode_utf16().count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnb::ElementChange;
    use serde_json::{Value, json};

    /// The repository's synthetic samples.
    const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/");

    /// The notifications of a sample pull response (`.json`) or NOTIFICATION file (`.ndjson`).
    fn sample(file: &str) -> Vec<Notification> {
        let text = std::fs::read_to_string(format!("{SAMPLES}{file}")).unwrap();
        let items: Vec<Value> = if file.ends_with(".ndjson") {
            text.lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect()
        } else {
            let response: Value = serde_json::from_str(&text).unwrap();
            response["notifications"].as_array().unwrap().clone()
        };
        items
            .iter()
            .map(|item| Notification::from_value(item).unwrap())
            .collect()
    }

    /// A note with no remarks, every paragraph with the same successor.
    fn plain_note(
        notifications: &[(i64, &Notification)],
        company: &CompanyView,
        successor: &SuccessorView,
    ) -> String {
        let entries: Vec<NoteEntry<'_>> = notifications
            .iter()
            .map(|(id, notification)| NoteEntry {
                id: *id,
                notification,
                successor: successor.clone(),
                remarks: Remarks::default(),
            })
            .collect();
        note_html(&entries, company)
    }

    fn company(duns: &str, name: Option<&str>) -> CompanyView {
        CompanyView {
            id: "90001".into(),
            name: name.map(str::to_string),
            duns: duns.into(),
            other_ids_with_same_duns: Vec::new(),
        }
    }

    /// What a salesperson sees for one notification: the task and the note.
    fn rendered(
        notification: &Notification,
        company: &CompanyView,
        successor: &SuccessorView,
    ) -> String {
        let task = task_text(101, notification, company, successor);
        let note = plain_note(&[(101, notification)], company, successor);
        format!(
            "TASK SUBJECT: {}\n\nTASK BODY:\n{}\n\nNOTE:\n{}\n",
            task.subject, task.body_html, note
        )
    }

    fn assert_sample_snapshot(
        name: &str,
        file: &str,
        company: CompanyView,
        successor: SuccessorView,
    ) {
        let notification = &sample(file)[0];
        let text = rendered(notification, &company, &successor);
        assert_well_formed(&text);
        insta::assert_snapshot!(name, text);
    }

    /// Every tag is closed in order; `<br>` is the only void tag written.
    fn assert_well_formed(html: &str) {
        let mut open: Vec<&str> = Vec::new();
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            let end = start + rest[start..].find('>').expect("a tag is cut");
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "broken tag {tag:?}");
            match tag.strip_prefix('/') {
                Some(closed) => assert_eq!(open.pop(), Some(closed), "in {html}"),
                None if tag == "br" => {}
                None => open.push(tag),
            }
            rest = &rest[end + 1..];
        }
        assert!(!rest.contains('>'), "stray '>'");
        assert!(open.is_empty(), "unclosed {open:?}");
    }

    fn update_with(elements: Vec<ElementChange>) -> Notification {
        let mut notification = sample("update.json").remove(0);
        notification.elements = elements;
        notification
    }

    fn change(element: &str, previous: Value, current: Value) -> ElementChange {
        ElementChange {
            element: element.into(),
            previous,
            current,
            timestamp: None,
        }
    }

    #[test]
    fn update_sample_lists_every_value_kind_readably() {
        assert_sample_snapshot(
            "update",
            "update.json",
            company("061934250", Some("Brightwater Instruments GmbH")),
            SuccessorView::Unknown,
        );
    }

    #[test]
    fn delete_sample_asks_to_confirm_closure() {
        assert_sample_snapshot(
            "delete",
            "delete.json",
            company("735019482", Some("Harbor Lane Foods Inc.")),
            SuccessorView::Unknown,
        );
    }

    #[test]
    fn transfer_to_a_duns_another_company_has_suggests_a_merge() {
        assert_sample_snapshot(
            "transfer_taken_by",
            "transfer.json",
            company("387201956", Some("Ferncliff Printing Co.")),
            SuccessorView::TakenBy {
                duns: "387201964".into(),
                company_id: "88123".into(),
                company_name: Some("Ashgrove Holdings plc".into()),
            },
        );
    }

    #[test]
    fn transfer_to_a_free_duns_says_the_duns_moved() {
        assert_sample_snapshot(
            "transfer_free",
            "transfer.json",
            company("387201956", Some("Ferncliff Printing Co.")),
            SuccessorView::Free {
                duns: "387201964".into(),
            },
        );
    }

    #[test]
    fn transfer_without_a_successor_asks_to_find_it() {
        let notification = &sample("transfer.json")[1];
        let text = rendered(
            notification,
            &company("605518420", Some("Oakhollow Trading Ltd")),
            &SuccessorView::Unknown,
        );
        assert_well_formed(&text);
        insta::assert_snapshot!("transfer_unknown", text);
    }

    #[test]
    fn transfer_to_an_unnamed_company_names_its_record() {
        let notification = &sample("transfer.json")[0];
        let successor = SuccessorView::TakenBy {
            duns: "387201964".into(),
            company_id: "88123".into(),
            company_name: None,
        };
        let task = task_text(1, notification, &company("387201956", None), &successor);
        assert_eq!(
            task.subject,
            "D-U-N-S 387201956 may have merged with HubSpot company 88123 (D&B)"
        );
    }

    #[test]
    fn seed_sample_shows_the_profile_and_falls_back_to_the_dnb_name() {
        assert_sample_snapshot(
            "seed",
            "seed.json",
            company("846203391", None),
            SuccessorView::Unknown,
        );
    }

    #[test]
    fn full_product_sample_shows_the_profile() {
        assert_sample_snapshot(
            "full_product",
            "full_product.json",
            company("170448825", Some("Tidewater Marine Supply Ltd")),
            SuccessorView::Unknown,
        );
    }

    #[test]
    fn undelete_sample_says_the_company_is_active_again() {
        assert_sample_snapshot(
            "undelete",
            "undelete.json",
            company("562091738", Some("Pinecrest Textiles Ltd")),
            SuccessorView::Unknown,
        );
    }

    #[test]
    fn reviewed_sample_says_the_review_finished() {
        assert_sample_snapshot(
            "reviewed",
            "reviewed.json",
            company("274663105", Some("Marigold Toys Corp")),
            SuccessorView::Unknown,
        );
    }

    #[test]
    fn under_review_sample_warns_to_treat_data_with_care() {
        assert_sample_snapshot(
            "under_review",
            "under_review.json",
            company("819340572", Some("Summit Snowsports AG")),
            SuccessorView::Unknown,
        );
    }

    #[test]
    fn exit_sample_says_coverage_is_lost_not_that_the_company_closed() {
        assert_sample_snapshot(
            "exit",
            "exit.json",
            company("350126679", None),
            SuccessorView::Unknown,
        );
    }

    #[test]
    fn removed_sample_says_coverage_is_lost_not_that_the_company_closed() {
        assert_sample_snapshot(
            "removed",
            "removed.json",
            company("781240056", Some("Redfern Vineyard & Winery")),
            SuccessorView::Unknown,
        );
    }

    /// A note of `notifications` with their remarks, each TRANSFER with its own successor.
    fn note_with(
        notifications: &[(i64, &Notification, SuccessorView, Remarks)],
        company: &CompanyView,
    ) -> String {
        let entries: Vec<NoteEntry<'_>> = notifications
            .iter()
            .map(|(id, notification, successor, remarks)| NoteEntry {
                id: *id,
                notification,
                successor: successor.clone(),
                remarks: remarks.clone(),
            })
            .collect();
        let note = note_html(&entries, company);
        assert_well_formed(&note);
        note
    }

    #[test]
    fn a_late_alert_says_so_and_that_a_newer_one_reversed_it() {
        let delete = &sample("delete.json")[0];
        let newer = "2025-03-03T09:00:00Z".parse().unwrap();
        let note = note_with(
            &[(
                9,
                delete,
                SuccessorView::Unknown,
                Remarks {
                    late_behind: Some(newer),
                    reversed_by: Some((NotificationType::Undelete, newer)),
                    ..Remarks::default()
                },
            )],
            &company("735019482", Some("Gadgets Ltd")),
        );
        insta::assert_snapshot!("late_reversed_note", note);
    }

    #[test]
    fn a_reversal_says_which_tasks_it_completed() {
        let undelete = &sample("undelete.json")[0];
        let reviewed = &sample("reviewed.json")[0];
        let one = note_with(
            &[(
                3,
                undelete,
                SuccessorView::Unknown,
                Remarks {
                    completed_tasks: 1,
                    ..Remarks::default()
                },
            )],
            &company("562091738", Some("Back Again Inc")),
        );
        let two = note_with(
            &[(
                4,
                reviewed,
                SuccessorView::Unknown,
                Remarks {
                    completed_tasks: 2,
                    ..Remarks::default()
                },
            )],
            &company("274663105", None),
        );
        insta::assert_snapshot!("reversal_notes", format!("{one}\n\n{two}"));
    }

    #[test]
    fn a_repeated_alert_with_an_open_task_says_no_second_task_was_made() {
        let under_review = &sample("under_review.json")[0];
        let note = note_with(
            &[(
                5,
                under_review,
                SuccessorView::Unknown,
                Remarks {
                    task_already_open: true,
                    ..Remarks::default()
                },
            )],
            &company("819340572", Some("Review Co")),
        );
        insta::assert_snapshot!("repeated_alert_note", note);
    }

    #[test]
    fn each_transfer_paragraph_names_its_own_successor() {
        let all = sample("transfer.json");
        let note = note_with(
            &[
                (1, &all[0], SuccessorView::Unknown, Remarks::default()),
                (
                    2,
                    &all[1],
                    SuccessorView::Free {
                        duns: "605518431".into(),
                    },
                    Remarks::default(),
                ),
            ],
            &company("387201956", None),
        );
        let unknown = note.find("did not say which number").unwrap();
        let named = note.find("The new number is 605518431").unwrap();
        assert!(unknown < named, "{note}");
    }

    #[test]
    fn three_notifications_of_one_duns_make_one_note() {
        let all = sample("DEMO_PORTFOLIO_20250303070000_NOTIFICATION_1.ndjson");
        let ours: Vec<(i64, &Notification)> = all
            .iter()
            .enumerate()
            .filter(|(_, notification)| notification.duns.as_str() == "508842167")
            .map(|(line, notification)| (line as i64 + 1, notification))
            .collect();
        assert_eq!(ours.len(), 3);
        let mut saltmarsh = company("508842167", Some("Saltmarsh Céramiques SARL"));
        saltmarsh.other_ids_with_same_duns = vec!["30412".into(), "30977".into()];
        let note = plain_note(&ours, &saltmarsh, &SuccessorView::Unknown);
        assert_well_formed(&note);
        for (id, _) in &ours {
            assert!(note.contains(&marker(*id)), "{note}");
        }
        insta::assert_snapshot!("coalesced_note", note);
    }

    #[test]
    fn repeated_and_no_op_changes_are_shown_once_or_not_at_all() {
        let renamed = change(
            "organization.primaryName",
            json!("Old Ltd"),
            json!("New Ltd"),
        );
        let same = change("organization.startDate", json!("2004"), json!("2004"));
        let only_codes_differ = change(
            "organization.dunsControlStatus.operatingStatus",
            json!({"description": "Active", "dnbCode": 9074}),
            json!({"description": "Active", "dnbCode": 9075}),
        );
        let first = update_with(vec![renamed.clone(), same, only_codes_differ]);
        let second = update_with(vec![renamed]);
        let note = plain_note(
            &[(1, &first), (2, &second)],
            &company("061934250", None),
            &SuccessorView::Unknown,
        );
        assert_eq!(note.matches("Old Ltd → New Ltd").count(), 1, "{note}");
        assert!(!note.contains("Founded"), "{note}");
        assert!(!note.contains("Operating status"), "{note}");
        assert_eq!(note.matches("Company data changed").count(), 2);
    }

    #[test]
    fn hostile_values_are_escaped_everywhere_in_html() {
        let hostile = "<script>alert('x')</script> & Sons";
        let notification = update_with(vec![change(
            "organization.primaryName",
            json!("A & B <b>"),
            json!(hostile),
        )]);
        let mut view = company("061934250", Some(hostile));
        view.other_ids_with_same_duns = vec!["<img src=x>".into()];
        let task = task_text(7, &notification, &view, &SuccessorView::Unknown);
        let note = plain_note(&[(7, &notification)], &view, &SuccessorView::Unknown);
        for html in [&task.body_html, &note] {
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains("<img"), "{html}");
            assert!(!html.contains("<b>"), "{html}");
            assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Sons"));
            assert!(html.contains("A &amp; B &lt;b&gt;"), "{html}");
            assert_well_formed(html);
        }
        // The subject is plain text: HubSpot shows it as it is.
        assert!(task.subject.starts_with(hostile), "{}", task.subject);
    }

    #[test]
    fn a_huge_note_is_cut_whole_with_a_notice_and_keeps_its_markers() {
        let elements = (0..3_000)
            .map(|index| {
                change(
                    &format!("organization.someField{index}"),
                    json!(format!("old value {index} {}", "x".repeat(60))),
                    json!(format!("new value {index} & <more> {}", "é".repeat(60))),
                )
            })
            .collect();
        let huge = update_with(elements);
        let delete = &sample("delete.json")[0];
        let note = plain_note(
            &[(41, &huge), (42, delete)],
            &company("061934250", Some("Brightwater")),
            &SuccessorView::Unknown,
        );
        assert!(
            note.chars().count() <= BODY_LIMIT,
            "{}",
            note.chars().count()
        );
        assert!(note.chars().count() > BODY_LIMIT - 1_000, "cut too early");
        assert!(note.ends_with(&format!("<p>{}</p>", marker(42))));
        assert!(note.contains(&format!("<p>{}</p>", marker(41))));
        assert!(
            note.contains("more changes, 1 more D&amp;B alert)</p>"),
            "{}",
            &note[note.len() - 300..]
        );
        assert_well_formed(&note);
        let task = task_text(
            41,
            &huge,
            &company("061934250", None),
            &SuccessorView::Unknown,
        );
        assert!(task.body_html.chars().count() <= BODY_LIMIT);
        assert!(task.body_html.ends_with(&format!("<p>{}</p>", marker(41))));
        assert!(task.body_html.contains("<strong>What to do:</strong>"));
        assert_well_formed(&task.body_html);
    }

    #[test]
    fn a_single_huge_value_is_shortened_not_dropped() {
        let notification = update_with(vec![change(
            "organization.primaryName",
            json!("A"),
            json!("B".repeat(100_000)),
        )]);
        let note = plain_note(
            &[(1, &notification)],
            &company("061934250", None),
            &SuccessorView::Unknown,
        );
        assert!(note.len() < 2_000, "{}", note.len());
        assert!(note.contains("BBB…</li>"), "{note}");
    }

    #[test]
    fn a_marker_matches_its_own_notification_only() {
        let note = format!("<p>{}</p>\n<p>{}</p>", marker(12), marker(7));
        assert!(carries_marker(&note, 12));
        assert!(carries_marker(&note, 7));
        assert!(!carries_marker(&note, 1), "1 is not 12");
        assert!(!carries_marker(&note, 123));
        assert!(
            !carries_marker("notification 1", 1),
            "the whole marker, not a word of it"
        );
    }

    #[test]
    fn the_marker_is_the_last_line_of_a_task_body() {
        assert_eq!(marker(123), "dnb-hubspot-bridge notification 123");
        let task = task_text(
            123,
            &sample("delete.json")[0],
            &company("735019482", None),
            &SuccessorView::Unknown,
        );
        assert_eq!(
            task.body_html.lines().last(),
            Some("<p>dnb-hubspot-bridge notification 123</p>")
        );
    }

    #[test]
    fn subjects_stay_short_with_long_names_and_many_changes() {
        let notification = &sample("update.json")[0];
        let long_name = "Very Long Company Name ".repeat(20);
        let task = task_text(
            1,
            notification,
            &company("061934250", Some(&long_name)),
            &SuccessorView::Unknown,
        );
        assert!(
            task.subject.chars().count() <= SUBJECT_LIMIT,
            "{}",
            task.subject
        );
        assert!(
            task.subject
                .ends_with(": Company name, Family tree members and 7 more changed (D&B)"),
            "{}",
            task.subject
        );
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn friday_evening_in_new_york_is_due_monday_at_nine_local() {
        // Friday 17 May 2024, 18:00 EDT.
        let due = next_business_day(utc("2024-05-17T22:00:00Z"), "America/New_York");
        assert_eq!(due, utc("2024-05-20T13:00:00Z"));
        assert_eq!(
            next_business_day(utc("2024-05-17T22:00:00Z"), "US/Eastern"),
            due
        );
    }

    #[test]
    fn weekends_and_weekdays_move_to_the_next_working_morning() {
        // Saturday and Sunday in Berlin (CEST, UTC+2) go to Monday; Monday goes to Tuesday.
        assert_eq!(
            next_business_day(utc("2024-05-18T10:00:00Z"), "Europe/Berlin"),
            utc("2024-05-20T07:00:00Z")
        );
        assert_eq!(
            next_business_day(utc("2024-05-19T10:00:00Z"), "Europe/Berlin"),
            utc("2024-05-20T07:00:00Z")
        );
        assert_eq!(
            next_business_day(utc("2024-05-20T06:00:00Z"), "Europe/Berlin"),
            utc("2024-05-21T07:00:00Z")
        );
    }

    #[test]
    fn today_is_the_local_date_not_the_utc_date() {
        // Tuesday 02:00 UTC is still Monday evening in New York.
        assert_eq!(
            next_business_day(utc("2024-05-21T02:00:00Z"), "America/New_York"),
            utc("2024-05-21T13:00:00Z")
        );
        // Friday 23:30 UTC is already Saturday in Tokyo: due Monday 09:00 JST.
        assert_eq!(
            next_business_day(utc("2024-05-17T23:30:00Z"), "Asia/Tokyo"),
            utc("2024-05-20T00:00:00Z")
        );
    }

    #[test]
    fn an_unknown_time_zone_means_utc() {
        assert_eq!(
            next_business_day(utc("2024-05-17T22:00:00Z"), "Mars/Olympus_Mons"),
            utc("2024-05-20T09:00:00Z")
        );
        assert_eq!(
            next_business_day(utc("2024-05-15T22:00:00Z"), ""),
            utc("2024-05-16T09:00:00Z")
        );
    }

    #[test]
    fn the_day_after_a_daylight_saving_change_keeps_nine_local() {
        // Sunday 10 March 2024 clocks went forward in New York; Monday is EDT (UTC-4).
        assert_eq!(
            next_business_day(utc("2024-03-08T20:00:00Z"), "America/New_York"),
            utc("2024-03-11T13:00:00Z")
        );
    }
}
