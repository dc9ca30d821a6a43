"""Versioned SQLite schema. Each migration runs once, in order, inside a transaction;
`PRAGMA user_version` records how far a file has come. Never edit a shipped step: add one."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta(key, value) VALUES ('data_version', '0'), ('vector_epoch', '0');

        CREATE TABLE memories (
            key INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            user_id TEXT, agent_id TEXT, session_id TEXT,
            kind TEXT NOT NULL,
            text TEXT NOT NULL,
            index_text TEXT NOT NULL,
            speaker TEXT, role TEXT,
            metadata TEXT NOT NULL DEFAULT '{}',
            occurred_at TEXT, recorded_at TEXT NOT NULL,
            valid_from TEXT, valid_to TEXT, expires_at TEXT, deleted_at TEXT,
            source_ids TEXT NOT NULL DEFAULT '[]', source_ref TEXT,
            importance REAL NOT NULL DEFAULT 0.5,
            access_count INTEGER NOT NULL DEFAULT 0,
            last_accessed_at TEXT,
            version INTEGER NOT NULL DEFAULT 1
        );
        CREATE INDEX memories_user ON memories(user_id, occurred_at);
        CREATE INDEX memories_agent ON memories(agent_id, occurred_at);
        CREATE INDEX memories_session ON memories(session_id, occurred_at);
        CREATE INDEX memories_kind ON memories(kind);
        CREATE INDEX memories_source_ref ON memories(source_ref);
        CREATE INDEX memories_expires ON memories(expires_at) WHERE expires_at IS NOT NULL;

        -- vectors live apart so scans of memories stay narrow
        CREATE TABLE vectors (key INTEGER PRIMARY KEY REFERENCES memories(key) ON DELETE CASCADE,
                              vector BLOB NOT NULL);

        CREATE VIRTUAL TABLE memories_fts USING fts5(
            index_text, content='memories', content_rowid='key', tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
            INSERT INTO memories_fts(rowid, index_text) VALUES (new.key, new.index_text);
        END;
        CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
            INSERT INTO memories_fts(memories_fts, rowid, index_text) VALUES ('delete', old.key, old.index_text);
        END;
        CREATE TRIGGER memories_au AFTER UPDATE OF index_text ON memories BEGIN
            INSERT INTO memories_fts(memories_fts, rowid, index_text) VALUES ('delete', old.key, old.index_text);
            INSERT INTO memories_fts(rowid, index_text) VALUES (new.key, new.index_text);
        END;

        CREATE TABLE history (
            seq INTEGER PRIMARY KEY,
            memory_id TEXT NOT NULL,
            user_id TEXT, agent_id TEXT, session_id TEXT,
            version INTEGER NOT NULL,
            action TEXT NOT NULL,
            before TEXT, after TEXT,
            at TEXT NOT NULL
        );
        CREATE INDEX history_memory ON history(memory_id, seq);
        CREATE INDEX history_user ON history(user_id);

        CREATE TABLE links (
            src_id TEXT NOT NULL, dst_id TEXT NOT NULL, type TEXT NOT NULL,
            reason TEXT, created_at TEXT NOT NULL,
            PRIMARY KEY (src_id, dst_id, type)
        );
        CREATE INDEX links_dst ON links(dst_id, type);
        """,
    ),
    (
        2,
        """
        -- late interaction (index/late.py): each memory's content-token vectors, int8, packed
        CREATE TABLE token_vectors (key INTEGER PRIMARY KEY REFERENCES memories(key) ON DELETE CASCADE,
                                    data BLOB NOT NULL);
        """,
    ),
    (
        3,
        """
        -- The keyword index is clustered by user: its rowid is fts_key = bucket(user_id) << 40 | key, so one user's
        -- rows sit in one rowid range and a scoped keyword search reads only that range of each posting list.
        -- (engramdb_bucket is defined by the store on its connection; the store sets fts_key on every insert.)
        ALTER TABLE memories ADD COLUMN fts_key INTEGER;
        UPDATE memories SET fts_key = engramdb_bucket(user_id) * 1099511627776 + key;
        CREATE UNIQUE INDEX memories_fts_key ON memories(fts_key);
        DROP TRIGGER memories_ai;
        DROP TRIGGER memories_ad;
        DROP TRIGGER memories_au;
        DROP TABLE memories_fts;
        CREATE VIRTUAL TABLE memories_fts USING fts5(
            index_text, content='memories', content_rowid='fts_key', tokenize='porter unicode61 remove_diacritics 2'
        );
        INSERT INTO memories_fts(memories_fts) VALUES ('rebuild');
        CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
            INSERT INTO memories_fts(rowid, index_text) VALUES (new.fts_key, new.index_text);
        END;
        CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
            INSERT INTO memories_fts(memories_fts, rowid, index_text) VALUES ('delete', old.fts_key, old.index_text);
        END;
        CREATE TRIGGER memories_au AFTER UPDATE OF index_text, fts_key ON memories
        WHEN old.index_text IS NOT new.index_text OR old.fts_key IS NOT new.fts_key BEGIN
            INSERT INTO memories_fts(memories_fts, rowid, index_text) VALUES ('delete', old.fts_key, old.index_text);
            INSERT INTO memories_fts(rowid, index_text) VALUES (new.fts_key, new.index_text);
        END;

        -- which vectors changed or vanished (replaced, re-embedded, deleted), so another process's index can
        -- patch just those rows instead of reloading every vector
        CREATE TABLE vector_log (seq INTEGER PRIMARY KEY, key INTEGER NOT NULL);
        CREATE TRIGGER vectors_log_u AFTER UPDATE ON vectors BEGIN
            INSERT INTO vector_log(key) VALUES (new.key);
        END;
        CREATE TRIGGER vectors_log_d AFTER DELETE ON vectors BEGIN
            INSERT INTO vector_log(key) VALUES (old.key);
        END;
        """,
    ),
    (
        4,
        """
        -- the audit log of disclosures (privacy/audit.py): each memory served to an audience. Stores that made
        -- it on first use (before v4) keep their rows; hard_delete now erases a memory's entries, not a trigger.
        CREATE TABLE IF NOT EXISTS privacy_disclosures (
            seq INTEGER PRIMARY KEY, at TEXT NOT NULL, user_id TEXT, memory_id TEXT NOT NULL, agent_id TEXT,
            purpose TEXT, categories TEXT NOT NULL DEFAULT '[]', action TEXT NOT NULL, op TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS privacy_disclosures_user ON privacy_disclosures(user_id, at);
        CREATE INDEX IF NOT EXISTS privacy_disclosures_memory ON privacy_disclosures(memory_id);
        CREATE INDEX IF NOT EXISTS privacy_disclosures_at ON privacy_disclosures(at);
        DROP TRIGGER IF EXISTS privacy_disclosures_forget;
        """,
    ),
    (
        5,
        """
        -- which memories each memory was derived from, one row per source, kept by triggers: finding the
        -- facts of a page of hits then reads those hits' rows, not every derived memory in the scope
        CREATE TABLE memory_sources (
            source_id TEXT NOT NULL, key INTEGER NOT NULL, PRIMARY KEY (source_id, key)
        ) WITHOUT ROWID;
        CREATE INDEX memory_sources_key ON memory_sources(key);
        INSERT OR IGNORE INTO memory_sources(source_id, key)
            SELECT j.value, m.key FROM memories m, json_each(m.source_ids) j WHERE m.source_ids != '[]';
        CREATE TRIGGER memory_sources_ai AFTER INSERT ON memories WHEN new.source_ids != '[]' BEGIN
            INSERT OR IGNORE INTO memory_sources(source_id, key) SELECT value, new.key FROM json_each(new.source_ids);
        END;
        CREATE TRIGGER memory_sources_au AFTER UPDATE OF source_ids ON memories
        WHEN old.source_ids IS NOT new.source_ids BEGIN
            DELETE FROM memory_sources WHERE key = old.key;
            INSERT OR IGNORE INTO memory_sources(source_id, key) SELECT value, new.key FROM json_each(new.source_ids);
        END;
        CREATE TRIGGER memory_sources_ad AFTER DELETE ON memories BEGIN
            DELETE FROM memory_sources WHERE key = old.key;
        END;
        """,
    ),
]

LATEST = MIGRATIONS[-1][0]
# The oldest schema a read-only open serves: the steps after it only add tables that can be done without (v4:
# the audit log reads as empty; v5: without the source index derived_from scans), so a read-only replica of an
# older file keeps working until it is migrated.
READ_ONLY_MIN = 3
