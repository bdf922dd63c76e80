//! Closed sets as types, below everything that uses them: the
//! [`closed_set!`] macro they are all declared with (here, in `pg/` and in
//! the report's vocabulary), each serialized to the string the scenario
//! and the report (`rehearse.report/v1`) have always used.

mod closed_set;

#[cfg(test)]
pub(crate) use closed_set::assert_serde_spells_as_str;
pub(crate) use closed_set::closed_set;
