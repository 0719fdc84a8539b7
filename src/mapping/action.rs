//! What a notification asks HubSpot to do: the action kinds of the
//! configurable table and the planned actions with their content.

use std::collections::BTreeMap;

use serde::Serialize;

/// The action names of `hubspot.actions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
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
    pub const ALL: [ActionKind; 4] = [
        Self::CreateTask,
        Self::CreateNote,
        Self::UpdateProperty,
        Self::UpdateCompany,
    ];

    /// The config and journal spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateTask => "create_task",
            Self::CreateNote => "create_note",
            Self::UpdateProperty => "update_property",
            Self::UpdateCompany => "update_company",
        }
    }

    /// Parses the config spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
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
