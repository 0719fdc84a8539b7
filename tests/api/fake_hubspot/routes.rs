//! Which endpoint a request is for: the path families (`/crm/v3/…` and the
//! date-versioned `/crm/…/2026-03/…`), the endpoints the fake serves, and the
//! matchers tests use to script faults and count calls.

use std::fmt;

/// The date version the fake serves besides v3.
pub const DATED_VERSION: &str = "2026-03";

/// Which path family a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `/crm/v3/objects/…`, `/crm/v3/properties/…`, `/crm/v3/owners`, `/account-info/v3/…`.
    V3,
    /// `/crm/objects/2026-03/…`, `/crm/properties/2026-03/…`, `/crm/owners/2026-03`, `/account-info/2026-03/…`.
    Dated,
}

/// The CRM object types the fake stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectType {
    /// `companies` (0-2).
    Companies,
    /// `tasks` (0-27).
    Tasks,
    /// `notes` (0-46).
    Notes,
}

impl ObjectType {
    /// The path segment, e.g. `companies`.
    pub fn segment(self) -> &'static str {
        match self {
            Self::Companies => "companies",
            Self::Tasks => "tasks",
            Self::Notes => "notes",
        }
    }

    fn parse(segment: &str) -> Option<Self> {
        match segment {
            "companies" => Some(Self::Companies),
            "tasks" => Some(Self::Tasks),
            "notes" => Some(Self::Notes),
            _ => None,
        }
    }
}

/// An endpoint the fake serves (the same for both path families).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// `POST …/objects/{type}/batch/read`.
    BatchRead(ObjectType),
    /// `POST …/objects/{type}/batch/create`.
    BatchCreate(ObjectType),
    /// `POST …/objects/{type}/batch/update`.
    BatchUpdate(ObjectType),
    /// `POST …/objects/{type}/batch/upsert`.
    BatchUpsert(ObjectType),
    /// `POST …/objects/{type}/search`.
    Search(ObjectType),
    /// `GET …/owners/` (optionally `?email=`).
    Owners,
    /// `GET …/properties/{type}`.
    PropertiesList(ObjectType),
    /// `GET …/properties/{type}/{name}`.
    PropertyGet(ObjectType),
    /// `POST …/properties/{type}`.
    PropertyCreate(ObjectType),
    /// `POST …/properties/{type}/batch/read`.
    PropertiesBatchRead(ObjectType),
    /// `GET …/properties/{type}/groups`.
    GroupsList(ObjectType),
    /// `POST …/properties/{type}/groups`.
    GroupCreate(ObjectType),
    /// `GET /account-info/…/details`.
    AccountDetails,
}

impl Endpoint {
    /// Whether the endpoint is a search (its own per-second limit, no rate-limit headers).
    pub fn is_search(self) -> bool {
        matches!(self, Self::Search(_))
    }

    /// The scope HubSpot requires for it (§9 of the reference), `None` for account info.
    pub fn required_scope(self) -> Option<&'static str> {
        use ObjectType::{Companies, Notes, Tasks};
        Some(match self {
            Self::BatchRead(Companies) | Self::Search(Companies) => "crm.objects.companies.read",
            Self::BatchCreate(Companies)
            | Self::BatchUpdate(Companies)
            | Self::BatchUpsert(Companies) => "crm.objects.companies.write",
            Self::BatchRead(Tasks | Notes) | Self::Search(Tasks | Notes) => {
                "crm.objects.contacts.read"
            }
            Self::BatchCreate(_) | Self::BatchUpdate(_) | Self::BatchUpsert(_) => {
                "crm.objects.contacts.write"
            }
            Self::Owners => "crm.objects.owners.read",
            Self::PropertiesList(_)
            | Self::PropertyGet(_)
            | Self::PropertiesBatchRead(_)
            | Self::GroupsList(_) => "crm.schemas.companies.read",
            Self::PropertyCreate(_) | Self::GroupCreate(_) => "crm.schemas.companies.write",
            Self::AccountDetails => return None,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// A request resolved to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The path family used.
    pub family: Family,
    /// The `{name}` segment of `GET …/properties/{type}/{name}`.
    pub name: Option<String>,
}

/// Resolves `method path` to a served endpoint, or `None`.
pub fn resolve(method: &str, path: &str) -> Option<Route> {
    let trimmed = path.trim_end_matches('/');
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    let (family, api, rest): (Family, &str, &[&str]) = match segments.as_slice() {
        ["crm", "v3", api, rest @ ..] => (Family::V3, api, rest),
        ["crm", api, version, rest @ ..] if *version == DATED_VERSION => (Family::Dated, api, rest),
        ["account-info", "v3", rest @ ..] => (Family::V3, "account-info", rest),
        ["account-info", version, rest @ ..] if *version == DATED_VERSION => {
            (Family::Dated, "account-info", rest)
        }
        _ => return None,
    };
    let mut name = None;
    let endpoint = match (method, api, rest) {
        ("POST", "objects", [object, "batch", action]) => {
            let object = ObjectType::parse(object)?;
            match *action {
                "read" => Endpoint::BatchRead(object),
                "create" => Endpoint::BatchCreate(object),
                "update" => Endpoint::BatchUpdate(object),
                "upsert" => Endpoint::BatchUpsert(object),
                _ => return None,
            }
        }
        ("POST", "objects", [object, "search"]) => Endpoint::Search(ObjectType::parse(object)?),
        ("GET", "owners", []) => Endpoint::Owners,
        ("GET", "properties", [object]) => Endpoint::PropertiesList(ObjectType::parse(object)?),
        ("POST", "properties", [object]) => Endpoint::PropertyCreate(ObjectType::parse(object)?),
        ("POST", "properties", [object, "batch", "read"]) => {
            Endpoint::PropertiesBatchRead(ObjectType::parse(object)?)
        }
        ("GET", "properties", [object, "groups"]) => {
            Endpoint::GroupsList(ObjectType::parse(object)?)
        }
        ("POST", "properties", [object, "groups"]) => {
            Endpoint::GroupCreate(ObjectType::parse(object)?)
        }
        ("GET", "properties", [object, property]) => {
            name = Some((*property).to_owned());
            Endpoint::PropertyGet(ObjectType::parse(object)?)
        }
        ("GET", "account-info", ["details"]) => Endpoint::AccountDetails,
        _ => return None,
    };
    Some(Route {
        endpoint,
        family,
        name,
    })
}

/// Selects requests, for scripted faults and call counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointMatcher {
    /// Every request.
    Any,
    /// One endpoint, in either path family.
    Is(Endpoint),
    /// One endpoint in one path family.
    InFamily(Endpoint, Family),
    /// Served requests whose path contains the text.
    PathContains(String),
}

impl EndpointMatcher {
    /// Whether a request (its route, when served, and its path) matches.
    pub fn matches(&self, route: Option<&Route>, path: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Is(endpoint) => route.is_some_and(|route| route.endpoint == *endpoint),
            Self::InFamily(endpoint, family) => {
                route.is_some_and(|route| route.endpoint == *endpoint && route.family == *family)
            }
            Self::PathContains(text) => path.contains(text.as_str()),
        }
    }
}

impl From<Endpoint> for EndpointMatcher {
    fn from(endpoint: Endpoint) -> Self {
        Self::Is(endpoint)
    }
}
