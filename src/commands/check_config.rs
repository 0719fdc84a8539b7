//! `check-config`: print the effective config with secrets redacted, and
//! every problem; exit 1 when there is any.

use std::io::Write;
use std::process::ExitCode;

use crate::config::{ConfigError, Settings, validate};

/// Prints the config and its problems.
pub fn run(loaded: Result<Settings, Vec<ConfigError>>) -> ExitCode {
    let errors = match &loaded {
        Ok(settings) => {
            // Secrets are `SecretString`, whose Debug form is redacted. A closed pipe
            // (`check-config | head`) is not an error worth a panic.
            let _ = writeln!(std::io::stdout(), "{settings:#?}");
            validate(settings)
        }
        Err(errors) => errors.clone(),
    };
    if errors.is_empty() {
        let _ = writeln!(std::io::stdout(), "configuration is valid");
        ExitCode::SUCCESS
    } else {
        for error in &errors {
            eprintln!("error: {error}");
        }
        eprintln!("{} configuration problem(s)", errors.len());
        ExitCode::FAILURE
    }
}
