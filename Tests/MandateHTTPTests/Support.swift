@testable import MandateHTTP

typealias Part = HTTPRequestParser.Part

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Feeds the whole input at once.
func parse(_ s: String, limits: HTTPParserLimits = HTTPParserLimits()) -> [Part] {
    var p = HTTPRequestParser(limits: limits)
    return p.feed(bytes(s))
}

/// Feeds one byte per call, merging adjacent body parts.
func parseByteAtATime(_ s: String, limits: HTTPParserLimits = HTTPParserLimits()) -> [Part] {
    var p = HTTPRequestParser(limits: limits)
    var parts: [Part] = []
    for b in bytes(s) {
        for part in p.feed([b]) {
            if case .body(let new) = part, case .body(let old)? = parts.last { parts[parts.count - 1] = .body(old + new) }
            else { parts.append(part) }
        }
        if case .error? = parts.last { break }
    }
    return parts
}

func status(_ parts: [Part]) -> Int? {
    if case .error(let e)? = parts.last { return e.status }
    return nil
}

func head(_ parts: [Part]) -> HTTPRequestHead? {
    for p in parts { if case .head(let h) = p { return h } }
    return nil
}
