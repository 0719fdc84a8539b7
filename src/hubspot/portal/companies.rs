//! Companies for a batch: resolve each DUNS with one batch read, create the
//! companies SEED/FULL_PRODUCT create, and write every company's merged,
//! decided property changes in one batch update.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Halt, HubSpotExecutor, Reconcile, Work, look_again, looks, reconcile_due};
use crate::hubspot::client::BATCH_LIMIT;
use crate::hubspot::error::HubSpotError;
use crate::hubspot::executor::Execution;
use crate::hubspot::model::{BatchAnswer, CreateInput, SimpleObject, UpdateInput};
use crate::journal::{ActionRecord, ActionState, DeferReason, SkipReason};
use crate::mapping::lifecycle::MONITORING_STATUS;
use crate::mapping::render::{CompanyView, SuccessorView};
use crate::mapping::{Action, ActionKind};

/// What the batch read says about a company beside its name and owner.
#[derive(Debug, Clone, Default)]
pub(super) struct CompanyFacts {
    /// `dnb_last_alert_at`.
    pub last_alert_at: Option<DateTime<Utc>>,
    /// `dnb_monitoring_status`.
    pub monitoring_status: Option<String>,
}

impl CompanyFacts {
    fn of(company: &SimpleObject) -> Self {
        Self {
            last_alert_at: company.property("dnb_last_alert_at").and_then(parse_time),
            monitoring_status: company.property(MONITORING_STATUS).map(str::to_string),
        }
    }
}

/// What resolving the batch's companies found.
pub(super) struct Resolved {
    /// Alert state of every company found, by id.
    pub facts: HashMap<String, CompanyFacts>,
    /// Whether companies were found through search (the DUNS property is not unique), which
    /// lags writes.
    pub searched: bool,
}

/// A HubSpot datetime value: RFC 3339, or unix milliseconds.
fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|time| time.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            value
                .parse::<i64>()
                .ok()
                .and_then(DateTime::from_timestamp_millis)
        })
}

/// The successor DUNS a TRANSFER names in an `organization.duns` element.
fn successor_duns(work: &Work<'_>) -> Option<String> {
    work.planned
        .notification
        .elements
        .iter()
        .find(|change| change.element == "organization.duns")
        .and_then(|change| change.current.as_str())
        .filter(|duns| duns.len() == 9 && duns.bytes().all(|byte| byte.is_ascii_digit()))
        .map(str::to_string)
}

fn creatable_properties<'a>(work: &Work<'a>) -> Option<&'a BTreeMap<String, String>> {
    work.planned
        .plan
        .actions
        .iter()
        .find_map(|action| match action {
            Action::UpdateCompany {
                properties,
                create_if_missing: true,
            } if properties.contains_key("name") => Some(properties),
            _ => None,
        })
}

/// A done record of a company write; `detail` names the company.
pub(super) fn company_record(kind: &str, company_id: &str, mut detail: Value) -> ActionRecord {
    detail["company"] = json!(company_id);
    ActionRecord {
        key: kind.to_string(),
        kind: kind.to_string(),
        state: ActionState::Done,
        object_type: Some("companies".into()),
        object_id: Some(company_id.to_string()),
        detail: detail.to_string(),
    }
}

/// The company an earlier attempt of this notification acted on, from its checkpoints or
/// its journaled intents (a TRANSFER that may already have moved the DUNS).
fn checkpointed_company(work: &Work<'_>) -> Option<String> {
    work.earlier.values().find_map(|stored| {
        let detail: Value = serde_json::from_str(&stored.record.detail).ok()?;
        detail["company"].as_str().map(str::to_string).or_else(|| {
            (stored.record.object_type.as_deref() == Some("companies"))
                .then(|| stored.record.object_id.clone())
                .flatten()
        })
    })
}

/// Resolves every notification's company: by its DUNS (the oldest company when several carry
/// it), else by what the journal knows: a TRANSFER that moved the DUNS to a successor (read
/// by the successor in the same batch read) or the company its own checkpoints name. The first
/// SEED/FULL_PRODUCT of a DUNS without a company is its creator and the later notifications of
/// the DUNS wait for it; earlier ones, and all of a DUNS without a creator, end `no_company`.
/// Also resolves TRANSFER successors.
pub(super) async fn resolve(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
) -> Result<Resolved, Halt> {
    let batch_dunses: BTreeSet<String> = work
        .iter()
        .map(|item| item.planned.notification.duns.to_string())
        .collect();
    // Moves first, so a moved company is read by its new DUNS in the same batch read.
    let moves = executor
        .journal
        .moved_companies(&batch_dunses.iter().cloned().collect::<Vec<_>>())
        .await
        .map_err(|error| {
            Halt::Journal(format!("could not read the journal's DUNS moves: {error}"))
        })?;
    let mut dunses = batch_dunses.clone();
    for item in work.iter() {
        dunses.extend(successor_duns(item));
    }
    dunses.extend(moves.iter().map(|moved| moved.to.clone()));
    let dunses: Vec<String> = dunses.into_iter().collect();
    let property = &executor.duns_property;
    let wanted = vec![
        property.clone(),
        "name".into(),
        "hubspot_owner_id".into(),
        "dnb_last_alert_at".into(),
        MONITORING_STATUS.into(),
    ];
    let mut searched = false;
    let found = match executor
        .client
        .read_companies_by(property, &dunses, &wanted)
        .await
    {
        Ok(found) => found,
        // A DUNS property without unique values cannot be read by; search finds it instead.
        Err(HubSpotError::Rejected { message, .. })
            if message.to_lowercase().contains("unique") =>
        {
            searched = true;
            executor
                .client
                .search_in("companies", property, &dunses, &wanted)
                .await?
        }
        Err(error) => return Err(error.into()),
    };
    let mut by_duns: HashMap<String, Vec<SimpleObject>> = HashMap::new();
    for company in found {
        if let Some(duns) = company.property(property) {
            by_duns.entry(duns.to_string()).or_default().push(company);
        }
    }
    for companies in by_duns.values_mut() {
        // The oldest company is the one acted on; ids break ties between equal times.
        companies.sort_by(|left, right| {
            (&left.created_at, &left.id).cmp(&(&right.created_at, &right.id))
        });
    }

    // A DUNS with no company: the company it moved to (newest move first), else the one its
    // notifications' checkpoints name, read by record id.
    let mut by_id: HashMap<String, SimpleObject> = HashMap::new();
    let mut hinted: HashMap<String, String> = HashMap::new();
    for duns in batch_dunses
        .iter()
        .filter(|duns| !by_duns.contains_key(*duns))
    {
        if let Some(moved) = moves.iter().find(|moved| &moved.from == duns) {
            let holder = by_duns
                .get(&moved.to)
                .and_then(|companies| companies.iter().find(|c| c.id == moved.company_id));
            if let Some(holder) = holder {
                by_id.insert(holder.id.clone(), holder.clone());
            }
            hinted.insert(duns.clone(), moved.company_id.clone());
        }
    }
    for item in work.iter() {
        let duns = item.planned.notification.duns.to_string();
        if !by_duns.contains_key(&duns)
            && !hinted.contains_key(&duns)
            && let Some(company) = checkpointed_company(item)
        {
            hinted.insert(duns, company);
        }
    }
    let unread: Vec<String> = hinted
        .values()
        .filter(|id| !by_id.contains_key(*id))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !unread.is_empty() {
        for company in executor.client.read_companies(&unread, &wanted).await? {
            by_id.insert(company.id.clone(), company);
        }
    }

    let mut facts = HashMap::new();
    let mut creators: HashMap<String, usize> = HashMap::new();
    for (position, item) in work.iter_mut().enumerate() {
        let duns = item.planned.notification.duns.to_string();
        let (primary, others) = match by_duns.get(&duns) {
            Some(companies) => (companies.first(), &companies[1..]),
            None => (hinted.get(&duns).and_then(|id| by_id.get(id)), &[][..]),
        };
        match primary {
            Some(primary) => {
                item.owner = primary.property("hubspot_owner_id").map(str::to_string);
                facts
                    .entry(primary.id.clone())
                    .or_insert_with(|| CompanyFacts::of(primary));
                item.company = Some(CompanyView {
                    id: primary.id.clone(),
                    name: primary.property("name").map(str::to_string),
                    duns: duns.clone(),
                    other_ids_with_same_duns: others.iter().map(|other| other.id.clone()).collect(),
                });
            }
            None => match creators.get(&duns) {
                // Acts on the company its DUNS's creator makes, once it exists.
                Some(creator) => item.waits_for = Some(*creator),
                None if creatable_properties(item).is_some() => {
                    creators.insert(duns.clone(), position);
                }
                None => {
                    item.ended = Some(Execution::Skipped {
                        reason: SkipReason::NoCompany,
                        actions: Vec::new(),
                    })
                }
            },
        }
        if let Some(successor) = successor_duns(item) {
            let holder = by_duns
                .get(&successor)
                .and_then(|companies| companies.first());
            let own_id = item.company.as_ref().map(|company| company.id.clone());
            item.successor = match holder {
                Some(holder) if Some(&holder.id) != own_id.as_ref() => SuccessorView::TakenBy {
                    duns: successor,
                    company_id: holder.id.clone(),
                    company_name: holder.property("name").map(str::to_string),
                },
                _ => SuccessorView::Free { duns: successor },
            };
        }
    }
    Ok(Resolved { facts, searched })
}

/// The intent journaled before a company create: `looks` counts the searches that did not
/// find it yet.
fn create_intent(duns: &str, looks: u64) -> ActionRecord {
    ActionRecord {
        key: ActionKind::UpdateCompany.as_str().into(),
        kind: ActionKind::UpdateCompany.as_str().into(),
        state: ActionState::Unknown,
        object_type: Some("companies".into()),
        object_id: None,
        detail: json!({"creating": true, "duns": duns, "looks": looks}).to_string(),
    }
}

/// Creates the creators' companies (journaled as `unknown` first), then lets their followers act
/// on them, or wait with a creator that did not get its company.
pub(super) async fn create_missing(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
    resolved: &Resolved,
) -> Result<(), HubSpotError> {
    let creators: Vec<usize> = (0..work.len())
        .filter(|position| {
            let item = &work[*position];
            item.ended.is_none() && item.company.is_none() && item.waits_for.is_none()
        })
        .collect();
    let result = create_companies(executor, work, &creators, resolved.searched).await;
    for position in 0..work.len() {
        let Some(creator) = work[position].waits_for else {
            continue;
        };
        match work[creator].company.clone() {
            Some(company) => work[position].company = Some(company),
            // Per-DUNS order: nothing acts before the company exists.
            None => work[position].defer(DeferReason::Order, Duration::ZERO),
        }
    }
    result
}

async fn create_companies(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
    creators: &[usize],
    searched: bool,
) -> Result<(), HubSpotError> {
    if creators.is_empty() {
        return Ok(());
    }
    let mut inputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut intents = Vec::new();
    for &position in creators {
        let item = &mut work[position];
        let duns = item.planned.notification.duns.to_string();
        // An earlier create whose answer was lost, in a portal where companies are found
        // through search: resolve's search did not find it, but search lags writes.
        if searched
            && let Some(earlier) = item.earlier.get(ActionKind::UpdateCompany.as_str())
            && earlier.record.state == ActionState::Unknown
        {
            let looks = match reconcile_due(earlier, executor.reconcile_after) {
                Reconcile::Wait(wait) => Some((looks(earlier), wait)),
                Reconcile::Search => look_again(earlier, executor.reconcile_after),
            };
            if let Some((looks, wait)) = looks {
                item.records.push(create_intent(&duns, looks));
                item.reconcile_wait = Some(wait);
                continue;
            }
        }
        if let Some(properties) = creatable_properties(item) {
            inputs.insert(duns.clone(), properties.clone());
            intents.push((item.planned.id, create_intent(&duns, 0)));
        }
    }
    if inputs.is_empty() {
        return Ok(());
    }
    let mut created: HashMap<String, String> = HashMap::new();
    // A company this bridge created earlier may not show in search yet (when the DUNS property is
    // not unique, lookups go through search): the journal remembers it.
    let dunses: Vec<String> = inputs.keys().cloned().collect();
    let remembered = executor
        .journal
        .created_companies(&dunses)
        .await
        .unwrap_or_default();
    let mut reused: HashMap<String, String> = HashMap::new();
    if !remembered.is_empty() {
        let ids: Vec<String> = remembered.iter().map(|(_, id)| id.clone()).collect();
        let still_there = executor
            .client
            .read_companies(&ids, std::slice::from_ref(&executor.duns_property))
            .await?;
        for (duns, id) in remembered {
            if still_there.iter().any(|company| company.id == id) {
                inputs.remove(&duns);
                reused.insert(duns, id);
            }
        }
    }
    intents.retain(|(id, _)| {
        work.iter().any(|item| {
            item.planned.id == *id && inputs.contains_key(item.planned.notification.duns.as_str())
        })
    });
    if !intents.is_empty()
        && let Err(error) = executor
            .journal
            .record_actions(work[0].planned.claim, intents)
            .await
    {
        for &position in creators {
            work[position].fail(
                format!("could not journal the company create before sending it: {error}"),
                false,
            );
        }
        return Ok(());
    }
    let mut refused: HashMap<String, String> = HashMap::new();
    let all: Vec<CreateInput> = inputs
        .into_iter()
        .map(|(duns, properties)| CreateInput {
            properties,
            associations: Vec::new(),
            object_write_trace_id: format!("company-{duns}"),
        })
        .collect();
    for chunk in all.chunks(BATCH_LIMIT) {
        let (answer, failures) = match isolate(chunk.to_vec(), |inputs| {
            executor.client.create("companies", inputs)
        })
        .await
        {
            Ok(done) => done,
            Err(error) => {
                // The intents stay `unknown`: the next attempt looks for the companies first.
                for &position in creators {
                    let item = &mut work[position];
                    let duns = item.planned.notification.duns.to_string();
                    if chunk
                        .iter()
                        .any(|input| input.object_write_trace_id == format!("company-{duns}"))
                    {
                        item.records.push(create_intent(&duns, 0));
                    }
                }
                return Err(error);
            }
        };
        for company in answer.results {
            if let Some(duns) = company.property(&executor.duns_property) {
                created.insert(duns.to_string(), company.id.clone());
            }
        }
        for error in answer.errors {
            for trace in error.trace_ids() {
                if let Some(duns) = trace.strip_prefix("company-") {
                    refused.insert(
                        duns.to_string(),
                        format!("{}: {}", error.category, error.message),
                    );
                }
            }
        }
        for (input, error) in failures {
            if let Some(duns) = input.object_write_trace_id.strip_prefix("company-") {
                refused.insert(duns.to_string(), error.to_string());
            }
        }
    }
    // A refused create may be a company made by an earlier attempt whose answer was lost
    // (the unique DUNS property refuses a second one): read those back.
    let retry: Vec<String> = refused.keys().cloned().collect();
    if !retry.is_empty() {
        let wanted = vec![executor.duns_property.clone(), "name".into()];
        for company in executor
            .client
            .read_companies_by(&executor.duns_property, &retry, &wanted)
            .await?
        {
            if let Some(duns) = company.property(&executor.duns_property) {
                refused.remove(duns);
                created.insert(duns.to_string(), company.id.clone());
            }
        }
    }
    executor.metrics.hubspot_companies_created(created.len());
    for &position in creators {
        let item = &mut work[position];
        if item.ended.is_some() || item.reconcile_wait.is_some() {
            continue;
        }
        let duns = item.planned.notification.duns.to_string();
        let name =
            creatable_properties(item).and_then(|properties| properties.get("name").cloned());
        let view = |id: &String| CompanyView {
            id: id.clone(),
            name: name.clone(),
            duns: duns.clone(),
            other_ids_with_same_duns: Vec::new(),
        };
        if let Some(id) = reused.get(&duns) {
            // Found, not created: its fields are written by the update step.
            item.company = Some(view(id));
        } else if let Some(id) = created.get(&duns) {
            let names: Vec<String> = creatable_properties(item)
                .map(|properties| properties.keys().cloned().collect())
                .unwrap_or_default();
            item.records.push(company_record(
                ActionKind::UpdateCompany.as_str(),
                id,
                json!({"created": true, "duns": duns, "properties": names}),
            ));
            item.company = Some(view(id));
        } else if let Some(error) = refused.get(&duns) {
            // HubSpot answered that it created nothing: the intent goes back to planned.
            let mut planned = create_intent(&duns, 0);
            planned.state = ActionState::Planned;
            item.records.push(planned);
            item.fail(
                format!("HubSpot refused to create the company: {error}"),
                true,
            );
        } else {
            // HubSpot answered without a company carrying this DUNS: it may exist; the intent
            // stays `unknown` and the next attempt looks for it before creating again.
            item.records.push(create_intent(&duns, 0));
            item.fail(
                format!("HubSpot's answer to the company create did not include D-U-N-S {duns}"),
                false,
            );
        }
    }
    Ok(())
}

/// The company properties one notification writes, as decided: nothing it already wrote
/// (checkpoints), and no field or alert-tracking value a newer notification wrote.
fn decided_changes(item: &Work<'_>) -> Vec<(ActionKind, BTreeMap<String, String>)> {
    let Some(decision) = &item.decision else {
        return Vec::new();
    };
    let mut changes = Vec::new();
    for action in &item.planned.plan.actions {
        let (kind, properties) = match action {
            Action::UpdateProperty { .. } => {
                (ActionKind::UpdateProperty, decision.tracking.clone())
            }
            Action::UpdateCompany { .. } => (ActionKind::UpdateCompany, decision.fields.clone()),
            _ => continue,
        };
        if item.recorded(kind.as_str()).is_none() {
            changes.push((kind, properties));
        }
    }
    changes
}

/// Writes each company's decided property changes, merged in delivery order (the same id
/// twice in one batch update would fail the whole request). A TRANSFER that moves the DUNS
/// to a free successor journals the move first, so the old DUNS keeps reaching the company.
pub(super) async fn update(
    executor: &HubSpotExecutor,
    work: &mut [Work<'_>],
) -> Result<(), HubSpotError> {
    let mut order: Vec<usize> = (0..work.len()).filter(|p| work[*p].active()).collect();
    order.sort_by_key(|position| (work[*position].planned.notification.delivered_at, *position));
    let mut merged: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut moves = Vec::new();
    // Positions whose changes are in the update: their outcome depends on HubSpot's answer.
    let mut sent = BTreeSet::new();
    let decided: Vec<_> = order
        .iter()
        .map(|position| decided_changes(&work[*position]))
        .collect();
    for (&position, changes) in order.iter().zip(&decided) {
        let item = &work[position];
        let company = item.company.as_ref().expect("active work has a company");
        let mut properties = BTreeMap::new();
        for (_, values) in changes {
            properties.extend(values.clone());
        }
        // The DUNS moves only by a TRANSFER to a free successor; other writes leave it alone.
        properties.remove(&executor.duns_property);
        let writes_tracking = changes
            .iter()
            .any(|(kind, values)| *kind == ActionKind::UpdateProperty && !values.is_empty());
        match &item.successor {
            SuccessorView::Free { duns } if writes_tracking => {
                let old = item.planned.notification.duns.to_string();
                properties.insert(executor.duns_property.clone(), duns.clone());
                properties.insert("dnb_previous_duns".into(), old.clone());
                moves.push((position, old, duns.clone()));
            }
            SuccessorView::TakenBy { duns, .. } if writes_tracking => {
                properties.insert("dnb_successor_duns".into(), duns.clone());
            }
            _ => {}
        }
        if !properties.is_empty() {
            sent.insert(position);
            // Companies sharing the DUNS with this older one are flagged as its duplicates.
            for other in &company.other_ids_with_same_duns {
                merged
                    .entry(other.clone())
                    .or_default()
                    .insert("dnb_duplicate_of".into(), company.id.clone());
            }
            merged
                .entry(company.id.clone())
                .or_default()
                .extend(properties);
        }
    }
    if !moves.is_empty() {
        let intents: Vec<_> = moves
            .iter()
            .map(|(position, old, new)| {
                let company = &work[*position].company.as_ref().expect("active").id;
                let mut record = company_record(
                    ActionKind::UpdateProperty.as_str(),
                    company,
                    json!({"moved_from": old, "moved_to": new}),
                );
                record.state = ActionState::Unknown;
                (work[*position].planned.id, record)
            })
            .collect();
        let claim = work[0].planned.claim;
        if let Err(error) = executor.journal.record_actions(claim, intents).await {
            for (position, _, _) in &moves {
                work[*position].fail(
                    format!("could not journal the D-U-N-S move before sending it: {error}"),
                    false,
                );
            }
            return Ok(());
        }
    }
    let all: Vec<UpdateInput> = merged
        .into_iter()
        .map(|(id, properties)| UpdateInput {
            object_write_trace_id: format!("companies-{id}"),
            id,
            properties,
        })
        .collect();
    let (confirmed, refused) = send_updates(executor, "companies", all).await?;
    executor.metrics.hubspot_companies_updated(confirmed.len());
    for (position, changes) in order.into_iter().zip(decided) {
        let item = &mut work[position];
        let company = item.company.clone().expect("active work has a company");
        if sent.contains(&position) {
            if let Some(error) = refused.get(&company.id) {
                item.fail(format!("HubSpot refused the company update: {error}"), true);
                continue;
            }
            if !confirmed.contains(&company.id) {
                item.fail(
                    "HubSpot's answer to the company update did not confirm it".into(),
                    false,
                );
                continue;
            }
        }
        let moved = moves
            .iter()
            .find(|(moved, _, _)| *moved == position)
            .map(|(_, old, new)| (old.clone(), new.clone()));
        for (kind, properties) in changes {
            let names: Vec<&String> = properties.keys().collect();
            let mut detail = json!({"properties": names});
            if properties.is_empty() {
                detail["reason"] = json!("written_by_newer_alert");
            }
            if let (ActionKind::UpdateProperty, Some((old, new))) = (kind, &moved) {
                detail["moved_from"] = json!(old);
                detail["moved_to"] = json!(new);
            }
            item.records
                .push(company_record(kind.as_str(), &company.id, detail));
        }
    }
    Ok(())
}

/// Sends batch updates of `object` (inputs traced as `{object}-{id}`) and returns the ids
/// HubSpot confirmed and the ones it refused with its reason; an id in neither was not
/// confirmed.
pub(super) async fn send_updates(
    executor: &HubSpotExecutor,
    object: &str,
    all: Vec<UpdateInput>,
) -> Result<(BTreeSet<String>, HashMap<String, String>), HubSpotError> {
    let mut confirmed = BTreeSet::new();
    let mut refused: HashMap<String, String> = HashMap::new();
    for chunk in all.chunks(BATCH_LIMIT) {
        let (answer, failures) = isolate(chunk.to_vec(), |inputs| {
            executor.client.update(object, inputs)
        })
        .await?;
        confirmed.extend(answer.results.into_iter().map(|result| result.id));
        let prefix = format!("{object}-");
        for error in answer.errors {
            for trace in error.trace_ids().iter().chain(error.ids()) {
                let id = trace.strip_prefix(&prefix).unwrap_or(trace);
                refused.insert(
                    id.to_string(),
                    format!("{}: {}", error.category, error.message),
                );
            }
        }
        for (input, error) in failures {
            refused.insert(input.id.clone(), error.to_string());
        }
    }
    Ok((confirmed, refused))
}

/// Sends `inputs`; when HubSpot refuses a whole batch (400), halves it until the refused
/// inputs are found, so one bad input fails only its own notification. Failures of HubSpot
/// as a whole are returned as `Err`.
pub(super) async fn isolate<T, F, Fut>(
    inputs: Vec<T>,
    send: F,
) -> Result<(BatchAnswer, Vec<(T, HubSpotError)>), HubSpotError>
where
    T: Clone,
    F: Fn(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<BatchAnswer, HubSpotError>>,
{
    let mut answer = BatchAnswer::default();
    let mut failures = Vec::new();
    let mut pending = vec![inputs];
    while let Some(mut part) = pending.pop() {
        if part.is_empty() {
            continue;
        }
        match send(part.clone()).await {
            Ok(partial) => {
                answer.results.extend(partial.results);
                answer.errors.extend(partial.errors);
            }
            Err(error @ HubSpotError::Rejected { .. }) if part.len() == 1 => {
                failures.push((part.remove(0), error))
            }
            Err(HubSpotError::Rejected { .. }) => {
                let second = part.split_off(part.len() / 2);
                pending.push(second);
                pending.push(part);
            }
            Err(error) => return Err(error),
        }
    }
    Ok((answer, failures))
}
