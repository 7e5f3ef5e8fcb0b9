//! Readers for the deployment files at the repository root, for tests that check
//! them against the binary: the `Dockerfile`, `railway.toml` with the variable
//! blocks in its comments, the dotenv sample that `velro-origin env` prints, and
//! the subcommand list in `velro-origin --help`.
//!
//! Each reader covers the subset of its format that these files use and panics
//! with the offending line on anything else, so a test fails instead of
//! checking a misread file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Returns the workspace root, the parent of this crate's directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives one level below the workspace root")
        .to_path_buf()
}

/// Reads a file given relative to the workspace root.
pub fn read_workspace_file(relative_path: &str) -> String {
    let path = workspace_root().join(relative_path);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {} failed: {error}", path.display()))
}

/// Splits `text` into words the way a POSIX shell does for plain words, single
/// quotes and double quotes. Expansions (`$X`) are kept as written.
pub fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for character in text.chars() {
        match quote {
            Some(open) if character == open => quote = None,
            Some(_) => word.push(character),
            None if character == '"' || character == '\'' => {
                quote = Some(character);
                in_word = true;
            }
            None if character.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(character);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unterminated quote in {text:?}");
    if in_word {
        words.push(word);
    }
    words
}

/// One Dockerfile instruction, with its continuation lines joined.
#[derive(Debug, Clone)]
pub struct Instruction {
    /// The keyword in upper case, such as `FROM` or `HEALTHCHECK`.
    pub keyword: String,
    /// Everything after the keyword, trimmed.
    pub arguments: String,
    /// 1-based line number where the instruction starts.
    pub line: usize,
}

/// One build stage: a `FROM` and the instructions up to the next `FROM`.
#[derive(Debug)]
pub struct Stage {
    /// The base image, such as `debian:bookworm-slim`.
    pub base_image: String,
    /// The name given with `AS`, if any.
    pub name: Option<String>,
    /// The instructions after `FROM`.
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// Returns the last instruction with this keyword, which is the one Docker
    /// applies for `CMD`, `USER` and `HEALTHCHECK`.
    pub fn last(&self, keyword: &str) -> Option<&Instruction> {
        self.instructions
            .iter()
            .rev()
            .find(|instruction| instruction.keyword == keyword)
    }

    /// Returns every instruction with this keyword, in file order.
    pub fn all<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a Instruction> + 'a {
        self.instructions
            .iter()
            .filter(move |instruction| instruction.keyword == keyword)
    }

    /// Collects the variables this stage's `ENV` instructions set. A later
    /// instruction overrides an earlier one.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut variables = BTreeMap::new();
        for instruction in self.all("ENV") {
            let words = split_words(&instruction.arguments);
            if words.first().is_some_and(|word| !word.contains('=')) {
                // The legacy form `ENV NAME value with spaces` sets one variable.
                let (name, value) = instruction
                    .arguments
                    .split_once(char::is_whitespace)
                    .unwrap_or_else(|| panic!("ENV on line {} has no value", instruction.line));
                variables.insert(name.to_string(), value.trim().to_string());
                continue;
            }
            for word in words {
                let (name, value) = word.split_once('=').unwrap_or_else(|| {
                    panic!(
                        "ENV on line {} mixes NAME=value and NAME value forms",
                        instruction.line
                    )
                });
                variables.insert(name.to_string(), value.to_string());
            }
        }
        variables
    }
}

/// A parsed Dockerfile.
#[derive(Debug)]
pub struct Dockerfile {
    /// The build stages in file order. The last one is the image that runs.
    pub stages: Vec<Stage>,
}

impl Dockerfile {
    /// Parses a Dockerfile that uses the default `\` escape character.
    ///
    /// Comment lines are dropped, also between continuation lines, as Docker
    /// does. Only `ARG` may come before the first `FROM`.
    pub fn parse(text: &str) -> Dockerfile {
        let mut stages: Vec<Stage> = Vec::new();
        for instruction in join_instructions(text) {
            if instruction.keyword == "FROM" {
                stages.push(parse_from(&instruction));
                continue;
            }
            match stages.last_mut() {
                Some(stage) => stage.instructions.push(instruction),
                None if instruction.keyword == "ARG" => {}
                None => panic!(
                    "{} on line {} comes before the first FROM",
                    instruction.keyword, instruction.line
                ),
            }
        }
        Dockerfile { stages }
    }

    /// Returns the last stage, which is the image that `docker build` produces
    /// without `--target`.
    pub fn runtime_stage(&self) -> &Stage {
        self.stages
            .last()
            .expect("the Dockerfile should have at least one FROM")
    }
}

/// Joins continuation lines and splits each instruction into keyword and arguments.
fn join_instructions(text: &str) -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (content, continues) = match line.strip_suffix('\\') {
            Some(content) => (content, true),
            None => (line, false),
        };
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        joined.push_str(content.trim_end());
        joined.push(' ');
        if continues {
            pending = Some((start, joined));
            continue;
        }
        let joined = joined.trim();
        let (keyword, arguments) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((joined, ""));
        instructions.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            arguments: arguments.trim().to_string(),
            line: start,
        });
    }
    if let Some((start, _)) = pending {
        panic!("the instruction on line {start} ends with a continuation and no next line");
    }
    instructions
}

/// Reads `FROM [--platform=...] image [AS name]`.
fn parse_from(instruction: &Instruction) -> Stage {
    let words: Vec<String> = split_words(&instruction.arguments)
        .into_iter()
        .filter(|word| !word.starts_with("--"))
        .collect();
    let (base_image, name) = match words.as_slice() {
        [image] => (image.clone(), None),
        [image, as_keyword, name] if as_keyword.eq_ignore_ascii_case("AS") => {
            (image.clone(), Some(name.clone()))
        }
        _ => panic!(
            "FROM on line {} is not `FROM image [AS name]`: {}",
            instruction.line, instruction.arguments
        ),
    };
    Stage {
        base_image,
        name,
        instructions: Vec::new(),
    }
}

/// Reads an exec-form `CMD` or `ENTRYPOINT` (a JSON array of strings).
pub fn exec_form(instruction: &Instruction) -> Vec<String> {
    serde_json::from_str(&instruction.arguments).unwrap_or_else(|error| {
        panic!(
            "{} on line {} should be in exec form, a JSON array such as [\"velro-origin\", \"serve\"], \
             so that the binary runs as PID 1 and receives SIGTERM ({error}): {}",
            instruction.keyword, instruction.line, instruction.arguments
        )
    })
}

/// Returns the command of `HEALTHCHECK [options] CMD command`.
pub fn healthcheck_command(instruction: &Instruction) -> String {
    let words = split_words(&instruction.arguments);
    let position = words
        .iter()
        .position(|word| word.eq_ignore_ascii_case("CMD"))
        .unwrap_or_else(|| {
            panic!(
                "HEALTHCHECK on line {} has no CMD: {}",
                instruction.line, instruction.arguments
            )
        });
    words[position + 1..].join(" ")
}

/// Returns the path of the first `http://` URL in `command`, such as `/health`
/// for `curl -fsS http://127.0.0.1:${PORT}/health`.
pub fn http_url_path(command: &str) -> Option<String> {
    let after_scheme = &command[command.find("http://")? + "http://".len()..];
    let url_end = after_scheme
        .find(|character: char| character.is_whitespace() || character == '"' || character == '\'')
        .unwrap_or(after_scheme.len());
    let authority_and_path = &after_scheme[..url_end];
    let path = &authority_and_path[authority_and_path.find('/')?..];
    Some(path.to_string())
}

/// Source and destination of a `COPY`, with its `--from` stage if any.
#[derive(Debug)]
pub struct Copy {
    pub from_stage: Option<String>,
    pub sources: Vec<String>,
    pub destination: String,
}

/// Reads `COPY [--option=value ...] source... destination`.
pub fn parse_copy(instruction: &Instruction) -> Copy {
    let mut from_stage = None;
    let mut paths = Vec::new();
    for word in split_words(&instruction.arguments) {
        match word.strip_prefix("--") {
            Some(option) => {
                if let Some(stage) = option.strip_prefix("from=") {
                    from_stage = Some(stage.to_string());
                }
            }
            None => paths.push(word),
        }
    }
    let destination = paths.pop().unwrap_or_else(|| {
        panic!(
            "COPY on line {} has no destination: {}",
            instruction.line, instruction.arguments
        )
    });
    assert!(
        !paths.is_empty(),
        "COPY on line {} has no source: {}",
        instruction.line,
        instruction.arguments
    );
    Copy {
        from_stage,
        sources: paths,
        destination,
    }
}

/// The keys of `railway.toml` that the deploy tests read. Railway's
/// config-as-code reference names them in camelCase.
#[derive(Debug, Deserialize)]
pub struct RailwayConfig {
    pub build: RailwayBuild,
    pub deploy: RailwayDeploy,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RailwayBuild {
    pub builder: String,
    pub dockerfile_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RailwayDeploy {
    pub start_command: String,
    pub healthcheck_path: String,
    /// Seconds Railway waits for the health check path to return 200.
    pub healthcheck_timeout: u64,
    pub restart_policy_type: String,
}

/// Parses `railway.toml`, panicking with the TOML error if it is invalid.
pub fn parse_railway_config(text: &str) -> RailwayConfig {
    toml::from_str(text).unwrap_or_else(|error| panic!("railway.toml is invalid: {error}"))
}

/// Returns the top-level keys of `railway.toml`, for checking that Railway documents each one.
pub fn railway_top_level_keys(text: &str) -> Vec<String> {
    let table: toml::Table =
        toml::from_str(text).unwrap_or_else(|error| panic!("railway.toml is invalid: {error}"));
    table.keys().cloned().collect()
}

/// A block of `# NAME=value` comment lines between `# BEGIN <label>` and `# END <label>`.
#[derive(Debug)]
pub struct VariableBlock {
    /// The text after `BEGIN`.
    pub label: String,
    /// Name and value of each line, in file order.
    pub variables: Vec<(String, String)>,
}

/// Reads the variable blocks in the comments of `railway.toml`.
///
/// Railway's config-as-code schema has no table for environment variables, so
/// the file lists them in comments. Inside a block, every line must be a
/// comment of the form `# NAME=value`.
pub fn railway_variable_blocks(text: &str) -> Vec<VariableBlock> {
    let mut blocks = Vec::new();
    let mut open: Option<VariableBlock> = None;
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let Some(comment) = line.trim().strip_prefix('#') else {
            assert!(
                open.is_none(),
                "line {line_number} of railway.toml is not a comment, but the variable block \
                 above it has no END line"
            );
            continue;
        };
        let comment = comment.trim();
        if let Some(label) = comment.strip_prefix("BEGIN ") {
            assert!(
                open.is_none(),
                "line {line_number} of railway.toml begins a variable block inside another one"
            );
            open = Some(VariableBlock {
                label: label.trim().to_string(),
                variables: Vec::new(),
            });
        } else if comment == "END" || comment.starts_with("END ") {
            let block = open.take().unwrap_or_else(|| {
                panic!("line {line_number} of railway.toml ends a variable block that never began")
            });
            blocks.push(block);
        } else if let Some(block) = open.as_mut() {
            let (name, value) = comment.split_once('=').unwrap_or_else(|| {
                panic!(
                    "line {line_number} of railway.toml is inside a variable block but is not \
                     `# NAME=value`: {line}"
                )
            });
            assert!(
                is_variable_name(name),
                "line {line_number} of railway.toml names the variable {name:?}, which is not \
                 an upper-case environment variable name"
            );
            block.variables.push((name.to_string(), value.to_string()));
        }
    }
    assert!(
        open.is_none(),
        "railway.toml ends inside a variable block; add its END line"
    );
    blocks
}

/// Parses a dotenv sample: `NAME=value` lines, blank lines and `#` comments.
/// Values may be wrapped in double quotes. A name without a value maps to "".
pub fn parse_dotenv(text: &str) -> BTreeMap<String, String> {
    let mut variables = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line.split_once('=').unwrap_or_else(|| {
            panic!(
                "line {} of the dotenv sample is not NAME=value: {line}",
                index + 1
            )
        });
        let name = name.trim();
        assert!(
            is_variable_name(name),
            "line {} of the dotenv sample names {name:?}, which is not an environment variable name",
            index + 1
        );
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|inner| inner.strip_suffix('"'))
            .unwrap_or(value);
        variables.insert(name.to_string(), value.to_string());
    }
    variables
}

/// Returns the subcommands in the `Commands:` section of a clap `--help` output.
pub fn help_subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|line| line.trim() != "Commands:")
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

fn is_variable_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters
        .next()
        .is_some_and(|first| first.is_ascii_uppercase())
        && characters.all(|character| {
            character.is_ascii_uppercase() || character.is_ascii_digit() || character == '_'
        })
}
