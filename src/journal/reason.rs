//! Why a notification was skipped, went dead or was put off: closed sets of
//! short snake_case words, stored in the journal (`notifications.reason`,
//! `attempts.error`) and shown by the admin API.

use strum::{Display, EnumString, IntoStaticStr, VariantArray};

/// Why a notification ended `skipped`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum SkipReason {
    /// No HubSpot company has its DUNS and none may be created for it.
    NoCompany,
}

/// Why a notification ended `dead`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum DeadReason {
    /// Retrying cannot help: HubSpot refused its input as invalid.
    Invalid,
    /// Its own failure persisted longer than `workers.dead_after`.
    FailedTooLong,
}

/// Why HubSpot as a whole cannot take work now (the workers pause).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum PauseReason {
    /// The token was refused or lacks a scope.
    Auth,
    /// The rolling-window rate limit was reached.
    RateLimit,
    /// HubSpot answered 5xx, timed out or could not be reached.
    Outage,
    /// The daily quota is spent.
    DailyLimit,
    /// The portal lacks properties the bridge writes.
    Setup,
}

/// Why a notification was put off without spending an attempt.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Display, EnumString, IntoStaticStr, VariantArray,
)]
#[strum(serialize_all = "snake_case")]
pub enum DeferReason {
    /// HubSpot refused the credentials.
    Auth,
    /// HubSpot's rate limit.
    RateLimit,
    /// HubSpot was unavailable.
    Outage,
    /// HubSpot's daily quota is spent.
    DailyLimit,
    /// The portal lacks properties the bridge writes.
    Setup,
    /// A create whose answer was lost must first show in HubSpot's search.
    Reconcile,
    /// An earlier notification of its DUNS (the one creating its company) did not finish.
    Order,
    /// The batch's lease was lost before it finished.
    LeaseLost,
}

impl From<PauseReason> for DeferReason {
    fn from(reason: PauseReason) -> Self {
        match reason {
            PauseReason::Auth => Self::Auth,
            PauseReason::RateLimit => Self::RateLimit,
            PauseReason::Outage => Self::Outage,
            PauseReason::DailyLimit => Self::DailyLimit,
            PauseReason::Setup => Self::Setup,
        }
    }
}

macro_rules! as_str {
    ($($name:ident),*) => {$(
        impl $name {
            /// The stored word.
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    )*};
}
as_str!(SkipReason, DeadReason, PauseReason, DeferReason);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_the_documented_words() {
        assert_eq!(SkipReason::NoCompany.as_str(), "no_company");
        assert_eq!(DeadReason::FailedTooLong.as_str(), "failed_too_long");
        assert_eq!(DeferReason::LeaseLost.as_str(), "lease_lost");
        assert_eq!(
            DeferReason::from(PauseReason::DailyLimit).as_str(),
            "daily_limit"
        );
        let pauses: Vec<&str> = PauseReason::VARIANTS.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            pauses,
            ["auth", "rate_limit", "outage", "daily_limit", "setup"]
        );
    }
}
