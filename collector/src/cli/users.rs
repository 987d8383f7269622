//! `user` and `api-token`: the dashboard's users and the API's bearer tokens.

use super::{done, json_lines, people_time};
use crate::control::CollectorRequest;
use crate::store::Role;
use anyhow::Context;
use clap::Subcommand;
use pasopati_common::{HumanDuration, Timestamp};
use std::path::PathBuf;

#[derive(Subcommand)]
pub(super) enum UserCommand {
    /// Add a user. The password (at least 12 characters) is read from standard input.
    Add {
        #[command(flatten)]
        user: UserArgs,
        /// admin (fleet, users, sites), analyst (everything editorial) or viewer (read only),
        /// for the whole country; kanwil_admin or kanwil_analyst for one Kanwil (--kanwil);
        /// upt_operator for one site (--site).
        #[arg(long)]
        role: String,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Read the password from standard input (the only way; it keeps it out of `ps`).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users (JSON lines).
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Disable a user; their sessions and API tokens stop working at once.
    Disable(UserArgs),
    /// Set a user's new password, read from standard input (at least 12 characters).
    Passwd {
        #[command(flatten)]
        user: UserArgs,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Change a user's role: admin, analyst, viewer, kanwil_admin or kanwil_analyst (with
    /// --kanwil), upt_operator (with --site).
    Role {
        #[command(flatten)]
        user: UserArgs,
        #[arg(long)]
        role: String,
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

// The part of the country a regional role sees.
#[derive(clap::Args)]
pub(super) struct ScopeArgs {
    /// The Kanwil of a kanwil_admin or kanwil_analyst, e.g. "Jawa Tengah".
    #[arg(long)]
    kanwil: Option<String>,
    /// The site of an upt_operator (its id, as `site list` shows it).
    #[arg(long)]
    site: Option<String>,
}

impl ScopeArgs {
    /// The role named `name` with this scope; a Kanwil is checked against the gazetteer here,
    /// a site by the daemon.
    fn role(self, name: &str) -> anyhow::Result<Role> {
        let kanwil = match self.kanwil {
            Some(k) => Some(crate::admin::canonical_kanwil(&k).map_err(anyhow::Error::msg)?),
            None => None,
        };
        Role::from_parts(name, kanwil, self.site).map_err(anyhow::Error::msg)
    }
}

// The user a command acts on, and the collector's data directory.
#[derive(clap::Args)]
pub(super) struct UserArgs {
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    username: String,
}

#[derive(Subcommand)]
pub(super) enum ApiTokenCommand {
    /// Create a bearer token acting as a user; printed once, stored as its SHA-256. Its id
    /// and expiry go to standard error.
    Create {
        #[command(flatten)]
        user: UserArgs,
        /// How long the token works (`90d`, `12h`); after that it is refused.
        #[arg(long, default_value = "90d")]
        expires: HumanDuration,
    },
    /// List API tokens (JSON lines: id, user, creation, expiry), never the tokens themselves.
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Revoke one API token by its id (from `api-token list`); it stops working at once.
    Revoke {
        #[arg(long)]
        data_dir: PathBuf,
        /// The token's id.
        id: String,
    },
}

/// Runs one `user` command.
pub(super) async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            user: UserArgs { data_dir, username },
            role,
            scope,
            password_stdin: _,
        } => {
            let role = scope.role(&role)?;
            let described = role.describe();
            let password = read_password()?;
            let user = crate::web::auth::new_user(&username, role, &password)?;
            done(&data_dir, CollectorRequest::UserAdd(user)).await?;
            pasopati_common::outln!("user {username} added ({described})");
        }
        UserCommand::Passwd {
            user: UserArgs { data_dir, username },
            password_stdin: _,
        } => {
            let password = read_password()?;
            let hashed = crate::web::auth::new_user(&username, Role::Viewer, &password)?;
            let request = CollectorRequest::UserUpdate {
                username: username.clone(),
                password_hash: Some(hashed.password_hash),
                role: None,
            };
            done(&data_dir, request).await?;
            pasopati_common::outln!("password of {username} changed");
        }
        UserCommand::Role {
            user: UserArgs { data_dir, username },
            role,
            scope,
        } => {
            let role = scope.role(&role)?;
            let described = role.describe();
            let request = CollectorRequest::UserUpdate {
                username: username.clone(),
                password_hash: None,
                role: Some(role),
            };
            done(&data_dir, request).await?;
            pasopati_common::outln!("{username} is now {described}");
        }
        UserCommand::List { data_dir } => {
            json_lines(&data_dir, CollectorRequest::UserList).await?;
        }
        UserCommand::Disable(UserArgs { data_dir, username }) => {
            done(&data_dir, CollectorRequest::UserDisable(username.clone())).await?;
            pasopati_common::outln!("user {username} disabled");
        }
    }
    Ok(())
}

/// Runs one `api-token` command.
pub(super) async fn api_token(command: ApiTokenCommand) -> anyhow::Result<()> {
    match command {
        ApiTokenCommand::Create {
            user: UserArgs { data_dir, username },
            expires,
        } => {
            if expires.0.is_zero() {
                anyhow::bail!("--expires must be longer than zero");
            }
            let (token, hash) = crate::web::auth::new_api_token();
            let expires_at = Timestamp::now().0.saturating_add(expires.as_millis_i64());
            let request = CollectorRequest::ApiTokenAdd {
                username,
                hash,
                expires_at,
            };
            done(&data_dir, request).await?;
            pasopati_common::outln!("{token}");
            pasopati_common::errln!(
                "token id {} valid until {}",
                crate::store::api_token_id(&hash),
                people_time(&Timestamp(expires_at).to_rfc3339())
            );
        }
        ApiTokenCommand::List { data_dir } => {
            json_lines(&data_dir, CollectorRequest::ApiTokenList).await?;
        }
        ApiTokenCommand::Revoke { data_dir, id } => {
            done(&data_dir, CollectorRequest::ApiTokenRevoke(id.clone())).await?;
            pasopati_common::outln!("API token {id} revoked");
        }
    }
    Ok(())
}

/// The password on the first line of standard input (kept out of `ps` and the shell history).
fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    Ok(password.trim_end_matches(['\n', '\r']).to_owned())
}
