//! Closed sets as types, below everything that uses them: rehearse's own
//! (which backend, which migration tool and where it ran, which hazard
//! rule), and the [`closed_set!`] macro every set is declared with (here,
//! in `pg/` and in the report's vocabulary), each serialized to the string
//! the scenario and the report (`rehearse.report/v1`) have always used.
//! The report model, the plan and the stages import these; this module
//! imports none of them.

mod backend;
mod closed_set;
mod platform;
mod rule;
mod tool;

pub use backend::BackendKind;
pub use platform::Platform;
pub use rule::Rule;
pub use tool::{MigrationTool, RunsIn};

#[cfg(test)]
pub(crate) use closed_set::assert_serde_spells_as_str;
pub(crate) use closed_set::closed_set;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rehearse_s_sets_spell_as_the_scenario_and_the_report_do() {
        assert_serde_spells_as_str(&BackendKind::ALL, BackendKind::as_str);
        assert_serde_spells_as_str(&MigrationTool::ALL, MigrationTool::as_str);
        assert_serde_spells_as_str(&RunsIn::ALL, RunsIn::as_str);
        assert_serde_spells_as_str(&Rule::ALL, Rule::as_str);
        assert_serde_spells_as_str(&Platform::ALL, Platform::as_str);
    }
}
