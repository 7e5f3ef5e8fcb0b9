-- Portable between SQLite and Postgres: TEXT ids (UUIDs), BIGINT timestamps in
-- Unix milliseconds, and no engine-specific types or syntax.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_active_at BIGINT NOT NULL
);

CREATE INDEX users_last_active ON users (last_active_at);

-- Refresh tokens are stored as SHA-256 hashes. Tokens rotated from one login
-- share a family, so a reused token can revoke the whole family.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX projects_user_created ON projects (user_id, created_at, id);

CREATE TABLE models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    output_type TEXT NOT NULL,
    max_prompt_chars BIGINT NOT NULL,
    position BIGINT NOT NULL
);

INSERT INTO models (id, name, description, output_type, max_prompt_chars, position) VALUES
    ('velro-svg-sketch', 'Velro SVG Sketch', 'Draws a deterministic abstract sketch of circles and strokes from the prompt.', 'image/svg+xml', 2000, 1),
    ('velro-svg-mosaic', 'Velro SVG Mosaic', 'Lays out a deterministic tile mosaic whose palette and rhythm follow the prompt.', 'image/svg+xml', 2000, 2);

CREATE TABLE generations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id TEXT REFERENCES projects (id) ON DELETE CASCADE,
    model TEXT NOT NULL REFERENCES models (id),
    prompt TEXT NOT NULL,
    status TEXT NOT NULL,
    result_type TEXT,
    result TEXT,
    error TEXT,
    -- The client's Idempotency-Key and a hash of the request it came with.
    idempotency_key TEXT,
    request_hash TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT
);

-- NULL keys never conflict, in SQLite and in Postgres alike.
CREATE UNIQUE INDEX generations_idempotency ON generations (user_id, idempotency_key);
CREATE INDEX generations_user_created ON generations (user_id, created_at, id);
CREATE INDEX generations_status_created ON generations (status, created_at);
