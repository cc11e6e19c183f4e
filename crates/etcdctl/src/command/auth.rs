//! `user ...`, `role ...` and `auth enable|disable`: etcdctl's commands
//! for users, roles and their key permissions.

use std::io::BufRead;

use api::authpb::{permission, Permission, UserAddOptions};
use api::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest,
    AuthRoleGetRequest, AuthRoleGrantPermissionRequest, AuthRoleListRequest,
    AuthRoleRevokePermissionRequest, AuthStatusRequest, AuthUserAddRequest,
    AuthUserChangePasswordRequest, AuthUserDeleteRequest, AuthUserGetRequest,
    AuthUserGrantRoleRequest, AuthUserListRequest, AuthUserRevokeRoleRequest,
};
use clap::{ArgAction, Args, Subcommand};

use super::prefix_end;

/// The user and role auth cannot be enabled without.
const ROOT: &str = "root";
use crate::error::CtlError;
use crate::global::GlobalFlags;

/// Go's boolean flag forms (`--flag`, `--flag=false`).
#[derive(Args, Debug)]
pub struct PermFlags {
    /// grant a prefix permission
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    prefix: bool,
    /// grant a permission of keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
    from_key: bool,
}

/// The user subcommands.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Adds a new user
    Add {
        /// Read password from stdin instead of interactive terminal
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value_t = true, value_parser = goflags::parse_bool, action = ArgAction::Set)]
        interactive: bool,
        /// Supply password from the command line flag
        #[arg(long, default_value = "")]
        new_user_password: String,
        /// Create a user without password (CN based auth only)
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
        no_password: bool,
        /// user name or user:password
        args: Vec<String>,
    },
    /// Deletes a user
    Delete {
        /// user name
        args: Vec<String>,
    },
    /// Gets detailed information of a user
    Get {
        /// Show permissions of roles granted to the user
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value_t = false, value_parser = goflags::parse_bool, action = ArgAction::Set)]
        detail: bool,
        /// user name
        args: Vec<String>,
    },
    /// Lists all users
    List {
        /// (none)
        args: Vec<String>,
    },
    /// Changes password of user
    Passwd {
        /// If true, read password from stdin instead of interactive terminal
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value_t = true, value_parser = goflags::parse_bool, action = ArgAction::Set)]
        interactive: bool,
        /// user name
        args: Vec<String>,
    },
    /// Grants a role to a user
    GrantRole {
        /// user name and role name
        args: Vec<String>,
    },
    /// Revokes a role from a user
    RevokeRole {
        /// user name and role name
        args: Vec<String>,
    },
}

/// The role subcommands.
#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Adds a new role
    Add {
        /// role name
        args: Vec<String>,
    },
    /// Deletes a role
    Delete {
        /// role name
        args: Vec<String>,
    },
    /// Gets detailed information of a role
    Get {
        /// role name
        args: Vec<String>,
    },
    /// Lists all roles
    List {
        /// (none)
        args: Vec<String>,
    },
    /// Grants a key to a role
    GrantPermission {
        #[command(flatten)]
        flags: PermFlags,
        /// role name, permission type, key [endkey]
        args: Vec<String>,
    },
    /// Revokes a key from a role
    RevokePermission {
        #[command(flatten)]
        flags: PermFlags,
        /// role name, key [endkey]
        args: Vec<String>,
    },
}

/// The auth subcommands.
#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Enables authentication
    Enable {
        /// (none)
        args: Vec<String>,
    },
    /// Disables authentication
    Disable {
        /// (none)
        args: Vec<String>,
    },
    /// Returns authentication status
    Status {
        /// (none)
        args: Vec<String>,
    },
}

/// One word of standard input, as Go's `fmt.Scanf("%s")` reads a password.
fn read_word() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// A password from the terminal is not supported: etcd-rs's etcdctl reads
/// passwords with `--interactive=false` (standard input), `user:password`
/// or `--new-user-password`.
fn interactive_password() -> Result<String, CtlError> {
    Err(CtlError::bad_args(
        "failed to ask password: reading a password from the terminal is not supported; use --interactive=false",
    ))
}

/// The `[key, range_end)` of a permission from its arguments and flags
/// (etcdctl's `permRange`).
fn perm_range(args: &[String], f: &PermFlags) -> Result<(Vec<u8>, Vec<u8>), CtlError> {
    let exclusive = || CtlError::bad_args("--from-key and --prefix flags are mutually exclusive");
    let key = args[0].as_bytes();
    if key.is_empty() {
        if f.prefix && f.from_key {
            return Err(exclusive());
        }
        let end = if f.prefix || f.from_key {
            vec![0]
        } else {
            Vec::new()
        };
        return Ok((vec![0], end));
    }
    let end = match (args.get(1), f.prefix, f.from_key) {
        (None, true, true) => return Err(exclusive()),
        (None, true, false) => prefix_end(key),
        (None, false, true) => vec![0],
        (None, false, false) => Vec::new(),
        (Some(_), true, _) => {
            return Err(CtlError::bad_args(
                "unexpected endkey argument with --prefix flag",
            ))
        }
        (Some(_), _, true) => {
            return Err(CtlError::bad_args(
                "unexpected endkey argument with --from-key flag",
            ))
        }
        (Some(end), false, false) => end.clone().into_bytes(),
    };
    Ok((key.to_vec(), end))
}

fn one<'a>(args: &'a [String], msg: &str) -> Result<&'a str, CtlError> {
    match args {
        [a] => Ok(a),
        _ => Err(CtlError::bad_args(msg)),
    }
}

fn two<'a>(args: &'a [String], msg: &str) -> Result<(&'a str, &'a str), CtlError> {
    match args {
        [a, b] => Ok((a, b)),
        _ => Err(CtlError::bad_args(msg)),
    }
}

/// Runs a user subcommand.
pub async fn user(g: &GlobalFlags, cmd: &UserCommand) -> Result<(), CtlError> {
    let p = g.printer()?;
    match cmd {
        UserCommand::Add {
            interactive,
            new_user_password,
            no_password,
            args,
        } => {
            let arg = one(args, "user add command requires user name as its argument")?;
            let (name, password) = if *no_password {
                (arg.to_string(), String::new())
            } else if !new_user_password.is_empty() {
                (arg.to_string(), new_user_password.clone())
            } else if let Some((name, password)) = arg.split_once(':') {
                if name.is_empty() {
                    return Err(CtlError::bad_args("empty user name is not allowed"));
                }
                (name.to_string(), password.to_string())
            } else if !interactive {
                (arg.to_string(), read_word())
            } else {
                (arg.to_string(), interactive_password()?)
            };
            let req = AuthUserAddRequest {
                name: name.clone(),
                password,
                options: Some(UserAddOptions {
                    no_password: *no_password,
                }),
                hashed_password: String::new(),
            };
            let c = g.client().await?;
            let resp = g.timed(c.auth().user_add(req)).await?.into_inner();
            p.auth_changed(
                &resp,
                &resp.header,
                format!("User {name} created\n").into_bytes(),
            )
        }
        UserCommand::Delete { args } => {
            let name = one(
                args,
                "user delete command requires user name as its argument",
            )?;
            let c = g.client().await?;
            let req = AuthUserDeleteRequest {
                name: name.to_string(),
            };
            let resp = g.timed(c.auth().user_delete(req)).await?.into_inner();
            p.auth_changed(
                &resp,
                &resp.header,
                format!("User {name} deleted\n").into_bytes(),
            )
        }
        UserCommand::Get { detail, args } => {
            let name = one(args, "user get command requires user name as its argument")?;
            let c = g.client().await?;
            let req = AuthUserGetRequest {
                name: name.to_string(),
            };
            let resp = g.timed(c.auth().user_get(req)).await?.into_inner();
            if !detail {
                return p.user_get(name, &resp);
            }
            crate::printer::print_text(format!("User: {name}\n"));
            for role in &resp.roles {
                crate::printer::print_text("\n");
                let req = AuthRoleGetRequest { role: role.clone() };
                let r = g.timed(c.auth().role_get(req)).await?.into_inner();
                p.role_get(role, &r)?;
            }
            Ok(())
        }
        UserCommand::List { args } => {
            if !args.is_empty() {
                return Err(CtlError::bad_args(
                    "user list command requires no arguments",
                ));
            }
            let c = g.client().await?;
            let resp = g
                .timed(c.auth().user_list(AuthUserListRequest {}))
                .await?
                .into_inner();
            p.user_list(&resp)
        }
        UserCommand::Passwd { interactive, args } => {
            let name = one(
                args,
                "user passwd command requires user name as its argument",
            )?;
            let password = if *interactive {
                interactive_password()?
            } else {
                read_word()
            };
            let c = g.client().await?;
            let req = AuthUserChangePasswordRequest {
                name: name.to_string(),
                password,
                hashed_password: String::new(),
            };
            let resp = g
                .timed(c.auth().user_change_password(req))
                .await?
                .into_inner();
            p.auth_changed(&resp, &resp.header, b"Password updated\n".to_vec())
        }
        UserCommand::GrantRole { args } => {
            let (user, role) = two(
                args,
                "user grant command requires user name and role name as its argument",
            )?;
            let c = g.client().await?;
            let req = AuthUserGrantRoleRequest {
                user: user.to_string(),
                role: role.to_string(),
            };
            let resp = g.timed(c.auth().user_grant_role(req)).await?.into_inner();
            p.auth_changed(
                &resp,
                &resp.header,
                format!("Role {role} is granted to user {user}\n").into_bytes(),
            )
        }
        UserCommand::RevokeRole { args } => {
            let (user, role) = two(
                args,
                "user revoke-role requires user name and role name as its argument",
            )?;
            let c = g.client().await?;
            let req = AuthUserRevokeRoleRequest {
                name: user.to_string(),
                role: role.to_string(),
            };
            let resp = g.timed(c.auth().user_revoke_role(req)).await?.into_inner();
            p.auth_changed(
                &resp,
                &resp.header,
                format!("Role {role} is revoked from user {user}\n").into_bytes(),
            )
        }
    }
}

/// Runs a role subcommand.
pub async fn role(g: &GlobalFlags, cmd: &RoleCommand) -> Result<(), CtlError> {
    let p = g.printer()?;
    match cmd {
        RoleCommand::Add { args } => {
            let name = one(args, "role add command requires role name as its argument")?;
            let c = g.client().await?;
            let req = AuthRoleAddRequest {
                name: name.to_string(),
            };
            let resp = g.timed(c.auth().role_add(req)).await?.into_inner();
            p.auth_changed(
                &resp,
                &resp.header,
                format!("Role {name} created\n").into_bytes(),
            )
        }
        RoleCommand::Delete { args } => {
            let name = one(
                args,
                "role delete command requires role name as its argument",
            )?;
            let c = g.client().await?;
            let req = AuthRoleDeleteRequest {
                role: name.to_string(),
            };
            let resp = g.timed(c.auth().role_delete(req)).await?.into_inner();
            p.auth_changed(
                &resp,
                &resp.header,
                format!("Role {name} deleted\n").into_bytes(),
            )
        }
        RoleCommand::Get { args } => {
            let name = one(args, "role get command requires role name as its argument")?;
            let c = g.client().await?;
            let req = AuthRoleGetRequest {
                role: name.to_string(),
            };
            let resp = g.timed(c.auth().role_get(req)).await?.into_inner();
            p.role_get(name, &resp)
        }
        RoleCommand::List { args } => {
            if !args.is_empty() {
                return Err(CtlError::bad_args(
                    "role list command requires no arguments",
                ));
            }
            let c = g.client().await?;
            let resp = g
                .timed(c.auth().role_list(AuthRoleListRequest {}))
                .await?
                .into_inner();
            p.role_list(&resp)
        }
        RoleCommand::GrantPermission { flags, args } => {
            if args.len() < 3 {
                return Err(CtlError::bad_args(
                    "role grant command requires role name, permission type, and key [endkey] as its argument",
                ));
            }
            let perm_type =
                permission::Type::from_str_name(&args[1].to_uppercase()).ok_or_else(|| {
                    CtlError::bad_args(format!("invalid permission type: {}", args[1]))
                })?;
            let (key, range_end) = perm_range(&args[2..], flags)?;
            let c = g.client().await?;
            let req = AuthRoleGrantPermissionRequest {
                name: args[0].clone(),
                perm: Some(Permission {
                    perm_type: perm_type as i32,
                    key,
                    range_end,
                }),
            };
            let resp = g
                .timed(c.auth().role_grant_permission(req))
                .await?
                .into_inner();
            p.auth_changed(
                &resp,
                &resp.header,
                format!("Role {} updated\n", args[0]).into_bytes(),
            )
        }
        RoleCommand::RevokePermission { flags, args } => {
            if args.len() < 2 {
                return Err(CtlError::bad_args(
                    "role revoke-permission command requires role name and key [endkey] as its argument",
                ));
            }
            let (key, range_end) = perm_range(&args[1..], flags)?;
            let c = g.client().await?;
            let req = AuthRoleRevokePermissionRequest {
                role: args[0].clone(),
                key,
                range_end: range_end.clone(),
            };
            let resp = g
                .timed(c.auth().role_revoke_permission(req))
                .await?
                .into_inner();
            let (role, typed) = (&args[0], &args[1]);
            let simple = if range_end.is_empty() {
                format!("Permission of key {typed} is revoked from role {role}\n").into_bytes()
            } else if range_end == [0] {
                format!("Permission of range [{typed}, <open ended> is revoked from role {role}\n")
                    .into_bytes()
            } else {
                // The range end as bytes: --prefix can make one that is not UTF-8.
                [
                    format!("Permission of range [{typed}, ").as_bytes(),
                    &range_end,
                    format!(") is revoked from role {role}\n").as_bytes(),
                ]
                .concat()
            };
            p.auth_changed(&resp, &resp.header, simple)
        }
    }
}

/// Runs an auth subcommand. etcdctl prints enable's and disable's lines
/// in every format.
pub async fn auth(g: &GlobalFlags, cmd: &AuthCommand) -> Result<(), CtlError> {
    let (name, args) = match cmd {
        AuthCommand::Enable { args } => ("enable", args),
        AuthCommand::Disable { args } => ("disable", args),
        AuthCommand::Status { args } => ("status", args),
    };
    if !args.is_empty() {
        return Err(CtlError::bad_args(format!(
            "auth {name} command does not accept any arguments"
        )));
    }
    let p = g.printer()?;
    let c = g.client().await?;
    match cmd {
        AuthCommand::Enable { .. } => {
            g.timed(enable(&c)).await?;
            crate::printer::print_text("Authentication Enabled\n");
        }
        AuthCommand::Disable { .. } => {
            g.timed(c.auth().auth_disable(AuthDisableRequest {}))
                .await?;
            crate::printer::print_text("Authentication Disabled\n");
        }
        AuthCommand::Status { .. } => {
            let resp = g
                .timed(c.auth().auth_status(AuthStatusRequest {}))
                .await?
                .into_inner();
            p.auth_status(&resp)?;
        }
    }
    Ok(())
}

/// Enables auth; when the root user lacks the root role, adds the role
/// and grants it, then tries again, as etcdctl does (a root role that
/// exists but is not granted fails the add: "role name already exists").
async fn enable(c: &client::Client) -> Result<(), tonic::Status> {
    loop {
        match c.auth().auth_enable(AuthEnableRequest {}).await {
            Ok(_) => return Ok(()),
            Err(s) if s.message() == "etcdserver: root user does not have root role" => {
                c.auth()
                    .role_add(AuthRoleAddRequest { name: ROOT.into() })
                    .await?;
                c.auth()
                    .user_grant_role(AuthUserGrantRoleRequest {
                        user: ROOT.into(),
                        role: ROOT.into(),
                    })
                    .await?;
            }
            Err(s) => return Err(s),
        }
    }
}
