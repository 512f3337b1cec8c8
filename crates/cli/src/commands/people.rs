//! `ocellus people`: who is enrolled on a node; remove someone.

use std::process::ExitCode;

use anyhow::Context;
use ocellus_protocol::Op;
use ocellus_protocol::face::{PeopleResult, RemovePersonRequest, RemovePersonResult};
use ocellus_protocol::message::{from_header, to_header};

use super::remote::{ServerArg, connect, runtime};

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
        let client = connect(&args.node.server).await?;
        match args.action {
            PeopleAction::List { json } => {
                let event = client
                    .request(Op::People, Default::default(), Vec::new())
                    .await?
                    .finish()
                    .await?;
                let result: PeopleResult =
                    from_header(&event.header).context("unexpected answer from the node")?;
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
                let event = client
                    .request(Op::RemovePerson, header, Vec::new())
                    .await?
                    .finish()
                    .await?;
                let result: RemovePersonResult =
                    from_header(&event.header).context("unexpected answer from the node")?;
                println!("removed {} ({} faces)", result.name, result.removed_faces);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
