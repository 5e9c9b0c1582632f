import CSQLite
import MandateCore

/// A value bound to, or read from, a statement.
enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case text(String)

    var text: String? { if case .text(let s) = self { s } else { nil } }
    var integer: Int64? { if case .integer(let i) = self { i } else { nil } }
}

/// One SQLite connection: statements are prepared and their values bound, never spliced into
/// SQL text. Not thread-safe by itself; `RegistryStore` serialises its use.
final class SQLiteDatabase {
    private let handle: OpaquePointer
    let path: String

    init(path: String) throws(Reason) {
        var h: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &h, flags, nil)
        guard rc == SQLITE_OK, let h else {
            let why = h.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            if let h { sqlite3_close(h) }
            throw Reason("\(path): cannot open the registry database (\(why))")
        }
        handle = h
        self.path = path
        sqlite3_extended_result_codes(h, 1)
    }

    deinit { sqlite3_close(handle) }

    /// Runs `sql` (no values), each row's columns to `row`.
    @discardableResult
    func run(_ sql: String, _ values: [SQLValue] = [], row: (([SQLValue]) -> Void)? = nil) throws(Reason) -> Int {
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else { throw failure("prepare") }
        defer { sqlite3_finalize(stmt) }
        for (i, v) in values.enumerated() {
            let n = Int32(i + 1), rc: Int32
            switch v {
            case .null: rc = sqlite3_bind_null(stmt, n)
            case .integer(let x): rc = sqlite3_bind_int64(stmt, n, x)
            case .text(let s): rc = sqlite3_bind_text(stmt, n, s, -1, SQLiteDatabase.transient)
            }
            guard rc == SQLITE_OK else { throw failure("bind") }
        }
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw failure("step") }
            guard let row else { continue }
            var columns: [SQLValue] = []
            for c in 0 ..< sqlite3_column_count(stmt) {
                switch sqlite3_column_type(stmt, c) {
                case SQLITE_INTEGER: columns.append(.integer(sqlite3_column_int64(stmt, c)))
                case SQLITE_NULL: columns.append(.null)
                default: columns.append(.text(sqlite3_column_text(stmt, c).map { String(cString: $0) } ?? ""))
                }
            }
            row(columns)
        }
        return Int(sqlite3_changes(handle))
    }

    /// Every row of a query.
    func rows(_ sql: String, _ values: [SQLValue] = []) throws(Reason) -> [[SQLValue]] {
        var out: [[SQLValue]] = []
        try run(sql, values) { out.append($0) }
        return out
    }

    /// The first column of the first row.
    func scalar(_ sql: String, _ values: [SQLValue] = []) throws(Reason) -> SQLValue? {
        try rows(sql, values).first?.first
    }

    /// `body` in one transaction, rolled back when it throws. IMMEDIATE: the write lock is taken
    /// at the start, so two writers wait (busy_timeout) instead of failing halfway.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try run("BEGIN IMMEDIATE")
        do {
            let r = try body()
            try run("COMMIT")
            return r
        } catch {
            _ = try? run("ROLLBACK")
            throw error
        }
    }

    /// SQLITE_CONSTRAINT_PRIMARYKEY (19 | 6 << 8) or _UNIQUE (19 | 8 << 8): the last failure was a
    /// duplicate (the macros do not import into Swift).
    var lastWasDuplicate: Bool {
        let rc = sqlite3_extended_errcode(handle)
        return rc == 1555 || rc == 2067
    }

    private func failure(_ what: String) -> Reason {
        Reason("\(path): \(String(cString: sqlite3_errmsg(handle)))", temporary: sqlite3_errcode(handle) == SQLITE_BUSY)
    }

    /// SQLITE_TRANSIENT: SQLite copies the bound text (a macro Swift cannot import).
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}
