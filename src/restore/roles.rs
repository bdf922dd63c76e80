//! The roles a dump names as owners and grantees, so they can be created
//! (NOLOGIN) before the restore needs them.

use std::collections::BTreeSet;
use std::io::BufRead;

use pg_query::protobuf::RoleSpecType;
use pg_query::NodeEnum;

/// Roles a pg_dump script names as owners or grantees. Reads line by line,
/// skipping COPY data, and parses each candidate line (pg_dump writes these
/// statements on one line each) with Postgres's own parser.
pub fn roles_in_script(reader: impl BufRead) -> std::io::Result<BTreeSet<String>> {
    let mut roles = BTreeSet::new();
    let mut in_copy = false;
    for line in reader.split(b'\n') {
        let line = line?;
        if in_copy {
            in_copy = line.as_slice() != b"\\.";
            continue;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        if text.starts_with("COPY ") && text.trim_end().ends_with("FROM stdin;") {
            in_copy = true;
            continue;
        }
        let candidate = (text.starts_with("ALTER ") && text.contains(" OWNER TO "))
            || text.starts_with("GRANT ")
            || text.starts_with("REVOKE ")
            || text.starts_with("ALTER DEFAULT PRIVILEGES ")
            || (text.starts_with("CREATE SCHEMA ") && text.contains(" AUTHORIZATION "));
        if candidate {
            roles.extend(roles_in_statement(text));
        }
    }
    Ok(roles)
}

fn roles_in_statement(sql: &str) -> Vec<String> {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return Vec::new();
    };
    let mut specs: Vec<pg_query::protobuf::RoleSpec> = Vec::new();
    let nodes = |list: &Vec<pg_query::protobuf::Node>| -> Vec<NodeEnum> {
        list.iter().filter_map(|n| n.node.clone()).collect()
    };
    for raw in &parsed.protobuf.stmts {
        let Some(stmt) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        let mut grants = Vec::new();
        match stmt {
            NodeEnum::AlterTableStmt(s) => {
                for cmd in nodes(&s.cmds) {
                    if let NodeEnum::AlterTableCmd(c) = cmd {
                        specs.extend(c.newowner.clone());
                    }
                }
            }
            NodeEnum::AlterOwnerStmt(s) => specs.extend(s.newowner.clone()),
            NodeEnum::CreateSchemaStmt(s) => specs.extend(s.authrole.clone()),
            NodeEnum::GrantStmt(s) => grants.push(s.clone()),
            NodeEnum::AlterDefaultPrivilegesStmt(s) => {
                grants.extend(s.action.clone());
                for opt in nodes(&s.options) {
                    if let NodeEnum::DefElem(d) = opt {
                        if let Some(NodeEnum::List(l)) = d.arg.as_ref().and_then(|a| a.node.clone()) {
                            for item in nodes(&l.items) {
                                if let NodeEnum::RoleSpec(r) = item {
                                    specs.push(r);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        for g in grants {
            for grantee in nodes(&g.grantees) {
                if let NodeEnum::RoleSpec(r) = grantee {
                    specs.push(r);
                }
            }
        }
    }
    specs
        .into_iter()
        .filter(|r| r.roletype == RoleSpecType::RolespecCstring as i32 && !r.rolename.is_empty())
        .map(|r| r.rolename)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_come_from_owner_and_grant_lines_not_copy_data() {
        let script = "\
ALTER TABLE public.users OWNER TO app;
GRANT SELECT ON TABLE public.users TO readonly;
GRANT ALL ON SCHEMA public TO \"Mixed Case\";
REVOKE ALL ON TABLE public.users FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public GRANT SELECT ON TABLES TO reporter;
COPY public.notes (id, body) FROM stdin;
1\tALTER TABLE x OWNER TO intruder;
\\.
ALTER FUNCTION public.f() OWNER TO fn_owner;
";
        let roles = roles_in_script(script.as_bytes()).unwrap();
        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        assert_eq!(roles, vec!["Mixed Case", "app", "fn_owner", "readonly", "reporter"]);
    }
}
