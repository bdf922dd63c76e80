//! Names and literals as PostgreSQL writes and reads them.

/// Quotes an identifier the way Postgres's quote_ident does for any name.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal (standard_conforming_strings is on since 9.1).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// An identifier as `format('%I')` writes it: quoted only when needed.
pub fn format_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        quote_ident(name)
    }
}

/// A parsed relation name (pg_query's RangeVar) as the catalog queries name
/// it: `schema.name`, `public` when unqualified (the search_path of a
/// restored dump is the default one).
pub fn range_var_name(rv: &pg_query::protobuf::RangeVar) -> String {
    let schema = if rv.schemaname.is_empty() { "public" } else { &rv.schemaname };
    format!("{}.{}", format_ident(schema), format_ident(&rv.relname))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("My \"Role\""), "\"My \"\"Role\"\"\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(format_ident("orders_2"), "orders_2");
        assert_eq!(format_ident("Big"), "\"Big\"");
    }
}
