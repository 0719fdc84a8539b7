//! What a notification asks HubSpot to do: the action kinds of the
//! configurable table and the planned actions with their content.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The action names of `hubspot.actions`, also the kind recorded with each journaled action.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[strum(serialize_all = "snake_case")]
pub enum ActionKind {
    /// A task for the company owner.
    CreateTask,
    /// A note on the company timeline.
    CreateNote,
    /// The alert-tracking properties of the company.
    UpdateProperty,
    /// D&B data synced into company fields (may create the company).
    UpdateCompany,
}

impl ActionKind {
    /// Every kind.
    pub const ALL: &'static [ActionKind] = <Self as strum::VariantArray>::VARIANTS;

    /// The config and journal spelling, e.g. `create_task`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses the config spelling (exactly as written).
    pub fn parse(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl Serialize for ActionKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ActionKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).ok_or_else(|| {
            serde::de::Error::unknown_variant(&name, <Self as strum::VariantNames>::VARIANTS)
        })
    }
}

/// HubSpot task priority (`hs_task_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskPriority {
    /// For critical types.
    High,
    /// Everything else.
    Medium,
}

/// One planned HubSpot action with its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    /// A task on the company.
    CreateTask {
        /// `hs_task_subject`.
        subject: String,
        /// `hs_task_body` (HTML).
        body: String,
        /// `hs_task_priority`.
        priority: TaskPriority,
    },
    /// A note on the company.
    CreateNote {
        /// `hs_note_body` (HTML).
        body: String,
    },
    /// Alert-tracking company properties.
    UpdateProperty {
        /// Property name → value (HubSpot values are strings).
        properties: BTreeMap<String, String>,
    },
    /// Company fields from D&B data.
    UpdateCompany {
        /// Property name → value.
        properties: BTreeMap<String, String>,
        /// Whether a missing company may be created.
        create_if_missing: bool,
    },
}

impl Action {
    /// Its kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            Self::CreateTask { .. } => ActionKind::CreateTask,
            Self::CreateNote { .. } => ActionKind::CreateNote,
            Self::UpdateProperty { .. } => ActionKind::UpdateProperty,
            Self::UpdateCompany { .. } => ActionKind::UpdateCompany,
        }
    }
}
