import Testing
@testable import MandateCore

/// RFC 8259 read strictly, as RFC 8725 §3.1 wants: one meaning per text.
@Suite struct StrictJSONTests {
    func parse(_ s: String) -> Result<JSONObject, JSONError> { StrictJSON.parseObject(Array(s.utf8)) }

    @Test func parsesMembersInOrderWithTypes() throws {
        let o = try parse(#"{"b":1,"a":"x","c":[true,false,null],"d":{"e":-2},"f":1.5}"#).get()
        #expect(o.names == ["b", "a", "c", "d", "f"])
        #expect(o["b"] == .integer(1))
        #expect(o["a"] == .string("x"))
        #expect(o["c"] == .array([.bool(true), .bool(false), .null]))
        #expect(o["d"]?.object?["e"] == .integer(-2))
        #expect(o["f"] == .number(1.5))
    }

    @Test func rejectsDuplicateMemberNames() {
        #expect(parse(#"{"a":1,"a":2}"#).refused == .duplicateMember("a"))
    }

    @Test func rejectsDuplicateMemberNamesThatDifferOnlyByEscapes() {
        #expect(parse(#"{"a":1,"\u0061":2}"#).refused == .duplicateMember("a"))
        #expect(parse(#"{"a/b":1,"a\/b":2}"#).refused == .duplicateMember("a/b"))
    }

    @Test func rejectsDuplicateMemberNamesInNestedObjects() {
        #expect(parse(#"{"cnf":{"jkt":"x","jkt":"y"}}"#).refused == .duplicateMember("jkt"))
    }

    @Test func rejectsInvalidUTF8() {
        let bad: [[UInt8]] = [
            Array(#"{"a":""#.utf8) + [0xff] + Array(#""}"#.utf8),
            Array(#"{"a":""#.utf8) + [0xc0, 0xaf] + Array(#""}"#.utf8),        // overlong '/'
            Array(#"{"a":""#.utf8) + [0xed, 0xa0, 0x80] + Array(#""}"#.utf8),  // UTF-8 encoded surrogate
            Array(#"{""#.utf8) + [0xe2, 0x82] + Array(#"":1}"#.utf8),          // truncated sequence in a name
        ]
        for b in bad { #expect(StrictJSON.parseObject(b).refused == .invalidUTF8) }
    }

    @Test func rejectsLoneSurrogates() {
        #expect(parse(#"{"a":"\ud800"}"#).refused == .invalidUTF8)
        #expect(parse(#"{"a":"\udc00"}"#).refused == .invalidUTF8)
        #expect(parse(#"{"a":"\ud800\u0041"}"#).refused == .invalidUTF8)
        #expect(parse(#"{"a":"\ud800x"}"#).refused == .invalidUTF8)
    }

    @Test func acceptsSurrogatePairs() throws {
        #expect(try parse(#"{"a":"\ud83d\ude00"}"#).get()["a"] == .string("😀"))
    }

    @Test func rejectsTrailingData() {
        #expect(parse(#"{"a":1} x"#).refused != nil)
        #expect(parse(#"{"a":1}{"b":2}"#).refused != nil)
    }

    @Test func rejectsByteOrderMark() {
        #expect(StrictJSON.parseObject([0xef, 0xbb, 0xbf] + Array(#"{"a":1}"#.utf8)).refused == .notAnObject)
    }

    @Test func rejectsNonObjectTopLevel() {
        #expect(parse("[1]").refused == .notAnObject)
        #expect(parse(#""a""#).refused == .notAnObject)
    }

    @Test func rejectsUnescapedControlCharacters() {
        #expect(parse("{\"a\":\"x\ny\"}").refused != nil)
    }

    @Test func rejectsLeadingZerosAndBareFractions() {
        #expect(parse(#"{"a":01}"#).refused != nil)
        #expect(parse(#"{"a":.5}"#).refused != nil)
        #expect(parse(#"{"a":1.}"#).refused != nil)
    }

    @Test func rejectsNestingDeeperThanLimit() {
        let deep = String(repeating: #"{"a":"#, count: StrictJSON.maxDepth + 2) + "1"
            + String(repeating: "}", count: StrictJSON.maxDepth + 2)
        #expect(parse(deep).refused == .tooDeep)
    }

    @Test func serialisesCompactlyAndRoundTrips() throws {
        let text = #"{"a":"q\"\\\n","b":[1,{"c":null}]}"#
        let o = try parse(text).get()
        #expect(String(decoding: o.serialized(), as: UTF8.self) == text)
    }
}
