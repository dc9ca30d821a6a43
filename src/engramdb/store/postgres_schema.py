"""Versioned PostgreSQL schema. Each migration runs once, in order, inside one transaction
under an advisory lock, and is recorded in `engramdb_migrations`. Never edit a shipped step: add one.

Everything lives in the store's schema (one per tenant); the pgvector extension lives wherever
the server installed it (public, or `extensions` on Supabase) and is reached through search_path.

Design notes:
- Times are timestamptz, metadata and history snapshots jsonb (GIN-indexed for filters).
- `tsv` is a generated tsvector over index_text (english: stemmed, stopwords dropped) with a GIN index;
  `doc_len` is the token count BM25 normalises by (set by the store, like FTS5's column size).
- Vectors are `vector` without a fixed dimension: the store builds one HNSW expression index per
  dimension in use, `(embedding::vector(d)) vector_cosine_ops`, once it knows the model's dimension.
- data_version / vector_epoch are sequences, bumped after commit: no hot row every writer queues on.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "initial schema",
        """
        CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
        CREATE SEQUENCE data_version_seq;
        CREATE SEQUENCE vector_epoch_seq;

        CREATE TABLE memories (
            key bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text NOT NULL UNIQUE,
            user_id text, agent_id text, session_id text,
            kind text NOT NULL,
            text text NOT NULL,
            index_text text NOT NULL,
            doc_len integer NOT NULL DEFAULT 0,
            tsv tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, index_text)) STORED,
            speaker text, role text,
            metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
            occurred_at timestamptz, recorded_at timestamptz NOT NULL,
            valid_from timestamptz, valid_to timestamptz, expires_at timestamptz, deleted_at timestamptz,
            source_ids jsonb NOT NULL DEFAULT '[]'::jsonb, source_ref text,
            importance double precision NOT NULL DEFAULT 0.5,
            access_count integer NOT NULL DEFAULT 0,
            last_accessed_at timestamptz,
            version integer NOT NULL DEFAULT 1
        );
        CREATE INDEX memories_user ON memories (user_id, occurred_at);
        CREATE INDEX memories_agent ON memories (agent_id, occurred_at);
        CREATE INDEX memories_session ON memories (session_id, occurred_at);
        CREATE INDEX memories_kind ON memories (kind);
        CREATE INDEX memories_source_ref ON memories (source_ref);
        CREATE INDEX memories_expires ON memories (expires_at) WHERE expires_at IS NOT NULL;
        CREATE INDEX memories_tsv ON memories USING gin (tsv);
        CREATE INDEX memories_metadata ON memories USING gin (metadata jsonb_path_ops);

        CREATE TABLE vectors (
            key bigint PRIMARY KEY REFERENCES memories (key) ON DELETE CASCADE,
            embedding vector NOT NULL
        );

        CREATE TABLE history (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            memory_id text NOT NULL,
            user_id text, agent_id text, session_id text,
            version integer NOT NULL,
            action text NOT NULL,
            before jsonb, after jsonb,
            at timestamptz NOT NULL
        );
        CREATE INDEX history_memory ON history (memory_id, seq);
        CREATE INDEX history_user ON history (user_id);

        CREATE TABLE links (
            src_id text NOT NULL, dst_id text NOT NULL, type text NOT NULL,
            reason text, created_at timestamptz NOT NULL,
            PRIMARY KEY (src_id, dst_id, type)
        );
        CREATE INDEX links_dst ON links (dst_id, type);
        """,
    ),
    (
        2,
        "GIN indexes without a pending list",
        # With fastupdate, fresh rows sit in an unsorted pending list until VACUUM; the planner prices that in and
        # falls back to sequential scans (20k rows: 125 ms per keyword search instead of 6 ms). Searches matter more.
        """
        ALTER INDEX memories_tsv SET (fastupdate = off);
        ALTER INDEX memories_metadata SET (fastupdate = off);
        SELECT gin_clean_pending_list('memories_tsv'::regclass);
        SELECT gin_clean_pending_list('memories_metadata'::regclass);
        """,
    ),
    (
        3,
        "token vectors for late interaction",
        """
        CREATE TABLE token_vectors (key bigint PRIMARY KEY REFERENCES memories(key) ON DELETE CASCADE,
                                    data bytea NOT NULL);
        """,
    ),
    (
        4,
        "the audit log of disclosures",
        # Schemas that made it on first use (before v4) keep their rows; hard_delete now erases a memory's entries.
        """
        CREATE TABLE IF NOT EXISTS privacy_disclosures (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL, user_id text, memory_id text NOT NULL, agent_id text, purpose text,
            categories jsonb NOT NULL DEFAULT '[]'::jsonb, action text NOT NULL, op text NOT NULL
        );
        CREATE INDEX IF NOT EXISTS privacy_disclosures_user ON privacy_disclosures (user_id, at);
        CREATE INDEX IF NOT EXISTS privacy_disclosures_memory ON privacy_disclosures (memory_id);
        CREATE INDEX IF NOT EXISTS privacy_disclosures_at ON privacy_disclosures (at);
        DROP TRIGGER IF EXISTS privacy_disclosures_forget ON memories;
        DROP FUNCTION IF EXISTS privacy_disclosures_forget();
        """,
    ),
    (
        5,
        "an index of each memory's sources",
        # derived_from (`source_ids ?| ids`) read every row of the scope without it
        """
        CREATE INDEX IF NOT EXISTS memories_source_ids ON memories USING gin (source_ids) WITH (fastupdate = off);
        """,
    ),
]

LATEST = MIGRATIONS[-1][0]

# Created before any migration, in the store's schema.
BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS engramdb_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
