//! `velro-origin seed`: demo users, projects and completed generations.
//!
//! Running it twice leaves the same users and the same number of generations:
//! existing users are kept (their password is reset to the one given), and each
//! user only gets the generations it is missing.

use std::time::Duration;

use anyhow::Context;
use velro_shared::api::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

use crate::auth::PasswordHasher;
use crate::config::Config;
use crate::db::{self, generations, projects, users, Db};
use crate::generation::{GenerationProvider, SvgSketchProvider};

/// Password of the demo users unless `--password` sets another. For local use only.
pub const DEFAULT_DEMO_PASSWORD: &str = "velro-demo-password";

/// Options of `seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Number of demo users, demo1@velro.test to demoN@velro.test.
    #[arg(long, default_value_t = 50)]
    pub users: u32,
    /// Completed generations each demo user has.
    #[arg(long, default_value_t = 20)]
    pub generations_per_user: u32,
    /// Password of every demo user. The default is public: use it only on a local machine.
    #[arg(long, default_value = DEFAULT_DEMO_PASSWORD)]
    pub password: String,
}

const PROJECT_NAMES: [&str; 2] = ["Moodboard", "Launch visuals"];
const PROMPTS: [&str; 8] = [
    "a lighthouse at dusk in flat pastel colours",
    "isometric city block with rooftop gardens",
    "a fox made of folded paper, studio lighting",
    "abstract waves in teal and coral",
    "retro poster of a rocket over a desert",
    "minimal logo sketch for a coffee roaster",
    "a cosy reading nook with rain on the window",
    "geometric portrait of a cat in primary colours",
];
const MODELS: [&str; 2] = ["velro-svg-sketch", "velro-svg-mosaic"];

/// Seeds the database that `config` names and prints one demo login.
pub async fn run(config: &Config, args: &SeedArgs) -> anyhow::Result<()> {
    let length = args.password.chars().count();
    anyhow::ensure!(
        (MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&length),
        "--password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters long, like any login password"
    );
    let db = db::connect(&config.database_url, &config.pool, None).await?;
    db::migrate(&db).await?;

    // One hash serves every demo user: hashing is deliberately slow, and demo accounts need no per-user salt.
    let password_hash = PasswordHasher::new(1)
        .hash(args.password.clone())
        .await
        .map_err(anyhow::Error::from)?;
    let provider = SvgSketchProvider::new(Duration::ZERO);
    let mut created_generations = 0;
    for index in 1..=args.users {
        let user_id = ensure_user(&db, index, &password_hash).await?;
        created_generations +=
            ensure_generations(&db, &provider, &user_id, index, args.generations_per_user).await?;
    }
    db.close().await;

    println!(
        "seeded {} demo users with {} generations each ({} new generations)",
        args.users, args.generations_per_user, created_generations
    );
    if args.users > 0 {
        println!("demo login: demo1@velro.test / {}", args.password);
    }
    Ok(())
}

async fn ensure_user(db: &Db, index: u32, password_hash: &str) -> anyhow::Result<String> {
    let email = format!("demo{index}@velro.test");
    let now = db::now_ms();
    if let Some(user) = users::find_by_email(db, &email).await? {
        users::set_password_hash(db, &user.id, password_hash, now).await?;
        return Ok(user.id);
    }
    let id = uuid::Uuid::now_v7().to_string();
    let display_name = format!("Demo User {index}");
    let new_user = users::NewUser {
        id: &id,
        email: &email,
        password_hash,
        display_name: &display_name,
        now_ms: now,
    };
    users::insert(db, &new_user)
        .await
        .with_context(|| format!("creating {email} failed"))?;
    for name in PROJECT_NAMES {
        let project_id = uuid::Uuid::now_v7().to_string();
        projects::insert(
            db,
            &id,
            &project_id,
            name,
            "Demo project created by `velro-origin seed`.",
            now,
        )
        .await?;
    }
    Ok(id)
}

async fn ensure_generations(
    db: &Db,
    provider: &SvgSketchProvider,
    user_id: &str,
    user_index: u32,
    wanted: u32,
) -> anyhow::Result<u32> {
    let existing =
        u32::try_from(generations::count_for_user(db, user_id).await?).unwrap_or(u32::MAX);
    let project_ids: Vec<String> = projects::list(db, user_id)
        .await?
        .into_iter()
        .map(|project| project.id)
        .collect();
    let now = db::now_ms();
    let mut created = 0;
    for number in existing..wanted {
        let prompt = PROMPTS[(number as usize + user_index as usize) % PROMPTS.len()];
        let model = MODELS[number as usize % MODELS.len()];
        let artefact = provider
            .generate(model, prompt)
            .await
            .map_err(|reason| anyhow::anyhow!("rendering demo generation failed: {reason}"))?;
        let id = uuid::Uuid::now_v7().to_string();
        let new = generations::NewGeneration {
            id: &id,
            user_id,
            project_id: project_ids
                .get(number as usize % project_ids.len().max(1))
                .map(String::as_str),
            model,
            prompt,
            idempotency_key: None,
            request_hash: "",
            // One minute apart, oldest first, so lists have a stable, realistic order.
            now_ms: now - i64::from(wanted - number) * 60_000,
        };
        generations::insert_completed(db, &new, &artefact.media_type, &artefact.content).await?;
        created += 1;
    }
    Ok(created)
}
