/// UTC calendar time from Unix time, proleptic Gregorian (H. Hinnant's days-to-civil algorithm).
public struct CivilTime: Equatable, Sendable {
    public var year: Int64, month: Int64, day: Int64, hour: Int64, minute: Int64, second: Int64

    public init(unixSeconds t: Int64) {
        let days = t >= 0 ? t / 86400 : (t - 86399) / 86400
        let secs = t - days * 86400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = doy - (153 * mp + 2) / 5 + 1
        month = mp < 10 ? mp + 3 : mp - 9
        year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        hour = secs / 3600; minute = secs % 3600 / 60; second = secs % 60
    }

    /// `2026-01-02 03:04:05 UTC`.
    public var text: String {
        "\(Self.pad(year, 4))-\(Self.pad(month, 2))-\(Self.pad(day, 2)) \(Self.pad(hour, 2)):\(Self.pad(minute, 2)):\(Self.pad(second, 2)) UTC"
    }

    public static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }
}

/// RFC 3339 §5.6 UTC with milliseconds, e.g. 2026-01-02T03:04:05.678Z.
public func appendTimestamp(_ unixMillis: Int64, to s: inout String) {
    let millis = ((unixMillis % 1000) + 1000) % 1000
    let t = CivilTime(unixSeconds: (unixMillis - millis) / 1000)
    s += CivilTime.pad(t.year, 4) + "-" + CivilTime.pad(t.month, 2) + "-" + CivilTime.pad(t.day, 2) + "T" + CivilTime.pad(t.hour, 2)
        + ":" + CivilTime.pad(t.minute, 2) + ":" + CivilTime.pad(t.second, 2) + "." + CivilTime.pad(millis, 3) + "Z"
}
