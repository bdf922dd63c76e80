//! The report with production's row values taken out of every text in it
//! (`report.redact`, on by default): what every format renders, so no
//! writer can show a value another forgot to take out.

use serde_json::Value;

use super::Report;
use crate::sys::redact;

/// `report` with each string in it passed through [`redact::values`], and
/// `redacted` set. Done on the serialized model, so a text field added to
/// the model later is covered without a change here; the writers render
/// the model as read back, as they render a report.json (`rehearse comment`).
pub fn redacted(report: &Report) -> Report {
    let mut value = serde_json::to_value(report).expect("the report model always serializes");
    take_values_out(&mut value);
    let mut redacted: Report =
        serde_json::from_value(value).expect("the report model reads back what it wrote, strings changed");
    redacted.redacted = true;
    redacted
}

fn take_values_out(value: &mut Value) {
    match value {
        // Keys are names (settings, tables, kinds), never a row's values.
        Value::Object(fields) => fields.values_mut().for_each(take_values_out),
        Value::String(text) => {
            if let std::borrow::Cow::Owned(changed) = redact::values(text) {
                *text = changed;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(take_values_out),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_loses_its_values_and_nothing_else_changes() {
        let mut report: Report =
            serde_json::from_str(include_str!("../../tests/fixtures/report-v1-demo.json")).unwrap();
        let detail = "ERROR: could not create unique index \"users_email_key\"\nDETAIL: Key (email)=(alice@example.com) is duplicated.";
        report.error = Some(detail.into());
        report.migrations[0].error = Some(crate::report::MigrationError::new(detail));
        let redacted = redacted(&report);
        let json = serde_json::to_string(&redacted).unwrap();
        assert!(!json.contains("alice@example.com"), "{json}");
        assert_eq!(json.matches("Key (email)=(…) is duplicated.").count(), 2, "{json}");
        assert!(redacted.redacted);
        let (mut back, mut before) = (redacted.clone(), report.clone());
        (back.error, back.migrations[0].error, back.redacted) = (None, None, false);
        (before.error, before.migrations[0].error) = (None, None);
        assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&before).unwrap());
    }
}
