//! A small SQL text builder that emits the dialect's placeholders (`?` or `$n`) and collects
//! the bound values beside them, so user input never becomes SQL text.

use crate::db::{Dialect, Value};

pub(crate) struct SqlBuilder {
    dialect: Dialect,
    pub(crate) sql: String,
    pub(crate) binds: Vec<Value>,
}

impl SqlBuilder {
    pub(crate) fn new(dialect: Dialect) -> Self {
        SqlBuilder { dialect, sql: String::with_capacity(512), binds: Vec::new() }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Appends trusted SQL text (never user input).
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `v`.
    pub(crate) fn bind(&mut self, v: impl Into<Value>) -> &mut Self {
        self.binds.push(v.into());
        match self.dialect {
            Dialect::Sqlite => self.sql.push('?'),
            Dialect::Postgres => {
                self.sql.push('$');
                self.sql.push_str(&self.binds.len().to_string());
            }
        }
        self
    }

    /// Appends `(?, ?, …)`; the caller makes sure `values` is not empty.
    pub(crate) fn bind_list<V: Into<Value>>(&mut self, values: impl IntoIterator<Item = V>) -> &mut Self {
        self.sql.push('(');
        for (n, v) in values.into_iter().enumerate() {
            if n > 0 {
                self.sql.push_str(", ");
            }
            self.bind(v);
        }
        self.sql.push(')');
        self
    }

    /// `LIMIT … OFFSET …`; SQLite wants a LIMIT whenever there is an OFFSET (-1 = none).
    pub(crate) fn limit_offset(&mut self, limit: Option<u32>, offset: u32) -> &mut Self {
        match (limit, self.dialect) {
            (Some(l), _) => {
                self.push(" LIMIT ").bind(i64::from(l));
            }
            (None, Dialect::Sqlite) => {
                self.push(" LIMIT -1");
            }
            (None, Dialect::Postgres) => {}
        }
        self.push(" OFFSET ").bind(i64::from(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_per_dialect() {
        let mut b = SqlBuilder::new(Dialect::Postgres);
        b.push("a = ").bind("x").push(" AND b IN ").bind_list([1i64, 2]);
        assert_eq!(b.sql, "a = $1 AND b IN ($2, $3)");
        assert_eq!(b.binds.len(), 3);
        let mut b = SqlBuilder::new(Dialect::Sqlite);
        b.push("a = ").bind("x").limit_offset(None, 5);
        assert_eq!(b.sql, "a = ? LIMIT -1 OFFSET ?");
    }
}
