//! `ocellus people`: who is enrolled on a node; remove someone.
//!
//! Invariant: one request per run, sent once; the exit code is success
//! only when the node answered it with a RESULT of the expected form.

use std::process::ExitCode;

use bytes::Bytes;
use ocellus_client::Client;
use ocellus_protocol::Op;
use ocellus_protocol::face::{PeopleResult, RemovePersonRequest, RemovePersonResult};
use ocellus_protocol::message::to_header;
use serde_json::{Map, Value};

use crate::remote::{ServerArg, answer, connect, runtime};

/// Arguments of `ocellus people`.
#[derive(clap::Args)]
pub struct PeopleArgs {
    #[command(flatten)]
    pub node: ServerArg,
    #[command(subcommand)]
    pub action: PeopleAction,
}

/// What to do.
#[derive(clap::Subcommand)]
pub enum PeopleAction {
    /// List the people with their face counts.
    List {
        /// Print a JSON array: [{"name", "faces"}].
        #[arg(long)]
        json: bool,
    },
    /// Remove a person: their faces and their influence on the models.
    Remove {
        /// The person's name.
        name: String,
    },
}

/// Runs the command.
pub fn run(args: PeopleArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let client = connect(&args.node.server, &args.node.connect).await?;
        match args.action {
            PeopleAction::List { json } => {
                let result: PeopleResult = ask(&client, Op::People, Map::new()).await?;
                if json {
                    println!("{}", serde_json::to_string(&result.people)?);
                } else if result.people.is_empty() {
                    println!("nobody is enrolled");
                } else {
                    for p in &result.people {
                        println!(
                            "{}: {} face{}",
                            p.name,
                            p.faces,
                            if p.faces == 1 { "" } else { "s" }
                        );
                    }
                }
            }
            PeopleAction::Remove { name } => {
                let header = to_header(&RemovePersonRequest { name });
                let result: RemovePersonResult = ask(&client, Op::RemovePerson, header).await?;
                println!("removed {} ({} faces)", result.name, result.removed_faces);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Sends one request without images and reads its RESULT.
async fn ask<T: serde::de::DeserializeOwned>(
    client: &Client,
    op: Op,
    header: Map<String, Value>,
) -> anyhow::Result<T> {
    let event = client
        .request(op, header, Bytes::new())
        .await?
        .finish()
        .await?;
    answer(&event)
}
