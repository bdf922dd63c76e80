//! The hazard rules' ids: which rule a finding is, and which ones a
//! scenario sets aside. The rules themselves live in `findings::hazards`.

use serde::Serialize;

use super::closed_set;

closed_set! {
    /// Every hazard rule rehearse knows, by its stable id (the report's
    /// `hazards[].rule`, `hazards.ignore` in the scenario, docs/hazards.md).
    /// Rules run, and are reported, in this order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    pub enum Rule {
        CreateIndexNonConcurrent = "create-index-non-concurrent",
        ForeignKeyValidated = "foreign-key-validated",
        CheckConstraintValidated = "check-constraint-validated",
        SetNotNull = "set-not-null",
        ColumnTypeRewrite = "column-type-rewrite",
        AddColumnRewrite = "add-column-rewrite",
        UniqueConstraintInlineIndex = "unique-constraint-inline-index",
        NoLockTimeout = "no-lock-timeout",
        BlockingMaintenance = "blocking-maintenance",
        LockHeldLong = "lock-held-long",
    }
}

impl Rule {
    /// `docs/hazards.md#<id>`: where the rule is explained.
    pub fn docs(self) -> String {
        format!("docs/hazards.md#{}", self.as_str())
    }
}

/// A rule read by its id (from the scenario, or a report); an unknown id is
/// an error at its line and column that lists every rule.
impl<'de> serde::Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        let id = <String as serde::Deserialize>::deserialize(d)?;
        Rule::from_name(&id).ok_or_else(|| {
            let known: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
            serde::de::Error::custom(format!(
                "unknown hazard rule `{id}`: the rules are {} (docs/hazards.md)",
                known.join(", ")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_is_read_by_its_id_and_an_unknown_id_lists_the_rules() {
        for rule in Rule::ALL {
            let read: Rule = serde_yaml::from_str(rule.as_str()).unwrap();
            assert_eq!(read, rule);
        }
        let err = serde_yaml::from_str::<Rule>("no-lock-timout").unwrap_err().to_string();
        assert!(err.contains("unknown hazard rule `no-lock-timout`"), "{err}");
        assert!(Rule::ALL.iter().all(|r| err.contains(r.as_str())), "{err}");
        assert_eq!(Rule::NoLockTimeout.docs(), "docs/hazards.md#no-lock-timeout");
    }
}
