//! Versioned schema migrations. Each entry upgrades the schema by one
//! version (`PRAGMA user_version`); entries are append-only: never edit one
//! that has shipped, add the next.

/// Migration `i` moves the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the ledger.
    r#"
    -- One scheduled (policy, target, slot): the intent, written before any
    -- API call. UNIQUE makes a slot impossible to run twice.
    CREATE TABLE runs (
        id           INTEGER PRIMARY KEY,
        policy       TEXT NOT NULL,
        target       TEXT NOT NULL,
        provider     TEXT NOT NULL,
        slot         TEXT NOT NULL,
        name         TEXT NOT NULL,
        full         INTEGER NOT NULL,
        -- intent | creating | pruning | succeeded | failed | skipped
        state        TEXT NOT NULL,
        started_at   TEXT NOT NULL,
        finished_at  TEXT,
        error        TEXT,
        UNIQUE (policy, target, slot)
    );
    CREATE INDEX runs_by_target ON runs (policy, target, slot);
    CREATE INDEX runs_open ON runs (state) WHERE state IN ('intent', 'creating', 'pruning');

    -- Every snapshot snapwarden made (or adopted after a crash).
    CREATE TABLE snapshots (
        id           INTEGER PRIMARY KEY,
        run_id       INTEGER NOT NULL REFERENCES runs (id),
        provider     TEXT NOT NULL,
        policy       TEXT NOT NULL,
        target       TEXT NOT NULL,
        slot         TEXT NOT NULL,
        name         TEXT NOT NULL,
        snapshot_id  TEXT NOT NULL,
        -- creating | available | failed | deleting | deleted
        state        TEXT NOT NULL,
        full         INTEGER NOT NULL,
        created_at   TEXT NOT NULL,
        completed_at TEXT,
        deleted_at   TEXT,
        error        TEXT,
        UNIQUE (provider, snapshot_id)
    );
    CREATE INDEX snapshots_by_target ON snapshots (policy, target, state);

    -- Create and delete operations in flight (and their outcome).
    CREATE TABLE operations (
        id               INTEGER PRIMARY KEY,
        snapshot         INTEGER NOT NULL REFERENCES snapshots (id),
        kind             TEXT NOT NULL,      -- create | delete
        provider         TEXT NOT NULL,
        reference        TEXT NOT NULL,      -- job / operation id
        started_at       TEXT NOT NULL,
        next_poll_at     TEXT NOT NULL,
        poll_interval_ms INTEGER NOT NULL,
        deadline         TEXT NOT NULL,
        finished_at      TEXT,
        outcome          TEXT,               -- succeeded | failed
        error            TEXT
    );
    CREATE INDEX operations_open ON operations (provider) WHERE finished_at IS NULL;

    -- The last slot the scheduler fired per policy: never fire one twice,
    -- and know what was missed while the daemon was down.
    CREATE TABLE schedule (
        policy     TEXT PRIMARY KEY,
        last_slot  TEXT NOT NULL
    );
    "#,
    // 2: secrets that rotate while the daemon runs (IP4G refresh tokens),
    // so that a restart uses the newest one.
    r#"
    CREATE TABLE provider_secrets (
        provider    TEXT NOT NULL,
        key         TEXT NOT NULL,
        value       TEXT NOT NULL,
        -- fingerprint of the configured value this one descends from
        seed        TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (provider, key)
    );
    "#,
    // 3: deletions a reload held back until the operator runs
    // `prune --policy P --yes`.
    r#"
    CREATE TABLE delete_holds (
        policy  TEXT NOT NULL,
        target  TEXT NOT NULL,
        reason  TEXT NOT NULL,
        since   TEXT NOT NULL,
        PRIMARY KEY (policy, target)
    );
    "#,
    // 4: lookups by run and by snapshot scanned whole tables (every
    // run of a 10,000-target slot read all 30,000 snapshot rows).
    r#"
    CREATE INDEX snapshots_by_run ON snapshots (run_id);
    CREATE INDEX operations_by_snapshot ON operations (snapshot);
    "#,
    // 5: what a reload or a restart is compared with (the retention rules
    // each policy last ran with), and the source (volume) each
    // snapshot was listed under, so that a source that left a target's
    // listing means "not looked at", not "deleted".
    r#"
    CREATE TABLE policy_rules (
        policy      TEXT PRIMARY KEY,
        provider    TEXT NOT NULL,
        rules       TEXT NOT NULL,
        updated_at  TEXT NOT NULL
    );
    CREATE TABLE snapshot_sources (
        snapshot  INTEGER PRIMARY KEY REFERENCES snapshots (id),
        source    TEXT NOT NULL
    );
    "#,
    // 6: the health probe's row. The probe commits a real write here (a
    // lock alone writes nothing, so a full disk never showed).
    r#"
    CREATE TABLE health_probe (
        id  INTEGER PRIMARY KEY CHECK (id = 1),
        at  TEXT NOT NULL
    );
    "#,
    // 7: reads that walked every run. The targets the ledger
    // knows, kept by `insert_run` (the list was a GROUP BY over all runs,
    // every few seconds); a target's skipped slots and its newest success
    // by index instead of by every run of the target.
    r#"
    CREATE TABLE targets (
        policy    TEXT NOT NULL,
        target    TEXT NOT NULL,
        -- the provider of its newest run
        provider  TEXT NOT NULL,
        PRIMARY KEY (policy, target)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO targets (policy, target, provider)
        SELECT policy, target, provider FROM runs ORDER BY id DESC;
    CREATE INDEX runs_skipped ON runs (policy, target) WHERE state = 'skipped';
    CREATE INDEX runs_succeeded ON runs (policy, target, slot) WHERE state = 'succeeded';
    "#,
    // 8: which alerts reached the operator (the command or webhook took
    // them), per policy, target and kind: a process killed between
    // deciding an alert and delivering it sends it again on its next
    // start, so no failure or skipped slot goes unheard.
    r#"
    CREATE TABLE alerts_delivered (
        policy  TEXT NOT NULL,
        target  TEXT NOT NULL,
        kind    TEXT NOT NULL,
        -- when the newest delivered alert of this kind was decided
        at      TEXT NOT NULL,
        PRIMARY KEY (policy, target, kind)
    ) WITHOUT ROWID;
    "#,
    // 9: at most one open run per (policy, target). `begin_run` checks
    // for an open run before it writes an intent, so this only ever
    // catches a race between two writers (the PostgreSQL ledger, shared
    // by two bastions, has the same index).
    r#"
    CREATE UNIQUE INDEX runs_one_open ON runs (policy, target)
        WHERE state IN ('intent', 'creating', 'pruning');
    "#,
    // 10: where the state went when `snapwarden migrate-state` copied
    // it into a PostgreSQL ledger (the URL without its password). A ledger
    // with this row refuses to open: a daemon started on it would run
    // the same slots a second time beside the one on PostgreSQL.
    r#"
    CREATE TABLE ledger_moved (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        location  TEXT NOT NULL,
        at        TEXT NOT NULL
    );
    "#,
    // 11: the post hooks owed. A row is written before a policy's pre
    // hook starts (a freeze) and removed once its post hook (the thaw)
    // has run; a restarted daemon runs every post hook still here, so no
    // thaw is lost. The command is the post hook's argv as a JSON array
    // of strings, and the resource as it was when recorded: the
    // configuration may change before the restart.
    r#"
    CREATE TABLE post_hooks_owed (
        run_id    INTEGER PRIMARY KEY REFERENCES runs (id),
        command   TEXT NOT NULL,
        resource  TEXT NOT NULL,
        since     TEXT NOT NULL
    );
    "#,
    // 12: the pauses an operator set (`snapwarden pause`), read by the
    // daemon every second: no slot of a paused policy starts, each is
    // recorded skipped. One row per scope: a policy, or the empty text
    // for every policy (a key that is never null, so the primary key
    // keeps one pause per scope). `until_at` null: until resumed.
    r#"
    CREATE TABLE pauses (
        scope      TEXT PRIMARY KEY,
        reason     TEXT NOT NULL,
        paused_by  TEXT NOT NULL,
        since      TEXT NOT NULL,
        until_at   TEXT
    ) WITHOUT ROWID;
    "#,
    // 13: each snapshot's size in bytes, as the cloud's listing gave it
    // (null: never recorded). An integer: SQLite keeps up to i64::MAX.
    r#"
    ALTER TABLE snapshots ADD COLUMN size_bytes INTEGER;
    "#,
    // 14: the holds an operator placed on snapshots (`snapwarden hold`):
    // nothing deletes a snapshot a hold in force covers. One row per
    // (policy, target, snapshot id), the empty snapshot id for the hold
    // of the whole target (a key that is never null, so the primary key
    // keeps one hold per key). `until_at` null: until released. And each
    // snapshot's delete claim: the leader claims a row before it asks
    // the cloud to delete it, until the time given (null: no claim), so
    // that a hold placed meanwhile is refused instead of racing the
    // delete.
    r#"
    CREATE TABLE snapshot_holds (
        policy       TEXT NOT NULL,
        target       TEXT NOT NULL,
        snapshot_id  TEXT NOT NULL,
        reason       TEXT NOT NULL,
        held_by      TEXT NOT NULL,
        since        TEXT NOT NULL,
        until_at     TEXT,
        PRIMARY KEY (policy, target, snapshot_id)
    ) WITHOUT ROWID;
    ALTER TABLE snapshots ADD COLUMN delete_claim_until TEXT;
    "#,
    // 15: the audit trail: who created, deleted or restored which snapshot,
    // who paused or resumed what, and why. Only appended to (and trimmed
    // by its own, longer horizon). `policy`, `target`, `snapshot` null:
    // not about one (a pause of every policy).
    r#"
    CREATE TABLE audit_log (
        id        INTEGER PRIMARY KEY,
        at        TEXT NOT NULL,
        actor     TEXT NOT NULL,
        action    TEXT NOT NULL,
        policy    TEXT,
        target    TEXT,
        snapshot  TEXT,
        detail    TEXT NOT NULL
    );
    CREATE INDEX audit_log_by_time ON audit_log (at, id);
    "#,
];
