//! How the user, role and auth commands print, format by format: etcdctl
//! 3.5's simple lines, the response as JSON or protobuf, the header (and
//! permissions) as fields; no tables, and no fields for `user get` and
//! `user list`, as in etcdctl.

use api::authpb::{permission, Permission};
use api::etcdserverpb::{
    AuthRoleGetResponse, AuthRoleListResponse, AuthStatusResponse, AuthUserGetResponse,
    AuthUserListResponse, ResponseHeader,
};
use prost::Message;

use super::json::{header_of, Obj};
use super::{fields, out, Format, Printer};
use crate::error::CtlError;

/// Writes `text` to standard output as it is.
pub fn print_text(text: impl AsRef<[u8]>) {
    out(text)
}

fn names(list: &[String]) -> Vec<serde_json::Value> {
    list.iter().map(|s| s.as_str().into()).collect()
}

/// A permission's range as etcdctl's `role get` shows it: raw bytes, as
/// Go prints them.
fn range_text(p: &Permission) -> Vec<u8> {
    let mut s = b"\t".to_vec();
    if p.range_end.is_empty() {
        s.extend_from_slice(&p.key);
        s.push(b'\n');
        return s;
    }
    s.push(b'[');
    s.extend_from_slice(&p.key);
    if p.range_end == [0] {
        s.extend_from_slice(b", <open ended>");
    } else {
        s.extend_from_slice(b", ");
        s.extend_from_slice(&p.range_end);
        s.push(b')');
    }
    if !p.key.is_empty() && crate::command::prefix_end(&p.key) == p.range_end {
        s.extend_from_slice(b" (prefix ");
        s.extend_from_slice(&p.key);
        s.push(b')');
    }
    s.push(b'\n');
    s
}

/// The permission's type, if it is one etcd knows.
fn kind(p: &Permission) -> Option<permission::Type> {
    permission::Type::try_from(p.perm_type).ok()
}

impl Printer {
    /// A change (user add, role grant-permission, ...): its simple line,
    /// the response (whose `header` it carries) as JSON or protobuf, the
    /// header as fields; no table (exit 4, after the change was made).
    pub fn auth_changed<M: Message>(
        &self,
        r: &M,
        header: &Option<ResponseHeader>,
        simple: Vec<u8>,
    ) -> Result<(), CtlError> {
        self.no_table(
            r,
            || simple,
            || Obj::new().obj("header", header_of(header)).value(),
            || fields::header(header),
        )
    }

    /// `user get`: `User: NAME` and its roles.
    pub fn user_get(&self, name: &str, r: &AuthUserGetResponse) -> Result<(), CtlError> {
        if self.format == Format::Fields {
            return Err(self.unsupported());
        }
        self.no_table(
            r,
            || {
                let roles: String = r.roles.iter().map(|x| format!(" {x}")).collect();
                format!("User: {name}\nRoles:{roles}\n").into_bytes()
            },
            || {
                Obj::new()
                    .obj("header", header_of(&r.header))
                    .list("roles", names(&r.roles))
                    .value()
            },
            String::new,
        )
    }

    /// `user list`: a name a line.
    pub fn user_list(&self, r: &AuthUserListResponse) -> Result<(), CtlError> {
        if self.format == Format::Fields {
            return Err(self.unsupported());
        }
        self.no_table(
            r,
            || {
                r.users
                    .iter()
                    .map(|u| format!("{u}\n"))
                    .collect::<String>()
                    .into_bytes()
            },
            || {
                Obj::new()
                    .obj("header", header_of(&r.header))
                    .list("users", names(&r.users))
                    .value()
            },
            String::new,
        )
    }

    /// `role get`: the keys the role may read, then those it may write.
    pub fn role_get(&self, role: &str, r: &AuthRoleGetResponse) -> Result<(), CtlError> {
        use permission::Type::{Read, Readwrite, Write};
        self.no_table(
            r,
            || {
                let of = |want: permission::Type| -> Vec<u8> {
                    r.perm
                        .iter()
                        .filter(|p| kind(p) == Some(want) || kind(p) == Some(Readwrite))
                        .flat_map(range_text)
                        .collect()
                };
                [
                    format!("Role {role}\nKV Read:\n").as_bytes(),
                    &of(Read),
                    b"KV Write:\n",
                    &of(Write),
                ]
                .concat()
            },
            || {
                let perms = r
                    .perm
                    .iter()
                    .map(|p| {
                        Obj::new()
                            .num("permType", p.perm_type)
                            .bytes("key", &p.key)
                            .bytes("range_end", &p.range_end)
                            .value()
                    })
                    .collect();
                Obj::new()
                    .obj("header", header_of(&r.header))
                    .list("perm", perms)
                    .value()
            },
            || {
                let mut s = fields::header(&r.header);
                for p in &r.perm {
                    s += &format!(
                        "\"PermType\" :  {}\n\"Key\" : {}\n\"RangeEnd\" : {}\n",
                        kind(p).map_or_else(
                            || p.perm_type.to_string(),
                            |k| k.as_str_name().to_string()
                        ),
                        fields::go_quote(&p.key),
                        fields::go_quote(&p.range_end)
                    );
                }
                s
            },
        )
    }

    /// `role list`: a name a line.
    pub fn role_list(&self, r: &AuthRoleListResponse) -> Result<(), CtlError> {
        self.no_table(
            r,
            || {
                r.roles
                    .iter()
                    .map(|x| format!("{x}\n"))
                    .collect::<String>()
                    .into_bytes()
            },
            || {
                Obj::new()
                    .obj("header", header_of(&r.header))
                    .list("roles", names(&r.roles))
                    .value()
            },
            || {
                let quoted: String = r
                    .roles
                    .iter()
                    .map(|x| format!(" {}", fields::go_quote(x.as_bytes())))
                    .collect();
                format!("{}\"Roles\" :{quoted}\n", fields::header(&r.header))
            },
        )
    }

    /// `auth status`: etcdctl 3.5's two lines, or the response as JSON or
    /// protobuf; no fields or table.
    pub fn auth_status(&self, r: &AuthStatusResponse) -> Result<(), CtlError> {
        if self.format == Format::Fields {
            return Err(self.unsupported());
        }
        self.no_table(
            r,
            || {
                format!(
                    "Authentication Status: {}\nAuthRevision: {}\n",
                    r.enabled, r.auth_revision
                )
                .into_bytes()
            },
            || {
                Obj::new()
                    .obj("header", header_of(&r.header))
                    .flag("enabled", r.enabled)
                    .num("authRevision", r.auth_revision)
                    .value()
            },
            String::new,
        )
    }
}
