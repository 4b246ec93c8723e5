//! Why a control-plane operation failed. Causes are part of the message and never also a
//! `source` (the workspace's convention), so `{:#}` and error-chain printers print each once.
use super::actors;
use crate::domain::seed::SeedError;
use crate::domain::snapshot::ImportError;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no tenant {0}")]
    NoTenant(String),
    #[error("seed: {0}")]
    Seed(SeedError),
    #[error("state: {0}")]
    Import(ImportError),
    #[error(transparent)]
    Act(#[from] actors::ActError),

    #[error("{0}")]
    Invalid(String),
    /// A number from outside is beyond what the control plane accepts (see [`super::limits`]).
    #[error("{0}")]
    OutOfRange(String),
}

impl From<SeedError> for ControlError {
    fn from(e: SeedError) -> ControlError {
        ControlError::Seed(e)
    }
}

impl From<ImportError> for ControlError {
    fn from(e: ImportError) -> ControlError {
        ControlError::Import(e)
    }
}

#[cfg(test)]
mod tests {

    use serde_json::Value;

    use super::*;

    /// The workspace's convention: an error whose message names its cause does not also expose
    /// it as `source`, so `{:#}` (anyhow, the CLI) prints the cause once.
    #[test]
    fn a_cause_in_the_message_is_not_also_the_source() {
        let parse = serde_json::from_str::<Value>("{").expect_err("not JSON");
        let cause = parse.to_string();
        let errors: Vec<Box<dyn std::error::Error>> = vec![
            Box::new(ControlError::from(SeedError::from(
                serde_json::from_str::<Value>("{").expect_err("not JSON"),
            ))),
            Box::new(ControlError::from(ImportError::from(
                serde_json::from_str::<Value>("{").expect_err("not JSON"),
            ))),
            Box::new(crate::server::StartError::from(SeedError::Parse(parse))),
        ];
        for e in errors {
            let mut chain = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                chain = format!("{chain}: {s}");
                source = s.source();
            }
            assert_eq!(chain.matches(&cause).count(), 1, "{chain}");
        }
    }
}
