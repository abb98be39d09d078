@testable import DTS
import Testing

@Suite struct PythonLiteralTests {
    @Test func dtsValues() throws {
        let params = try PythonLiteralParser.parse("{64: [1024], 1518: [1024, 512,],}")
        guard case .dict(let entries) = params.value else { Issue.record("not a dict"); return }
        #expect(entries.map(\.key.value) == [.int(64), .int(1518)])
        #expect(entries[1].value.value == .list([
            PythonLiteral(value: .int(1024), span: 20..<24, line: 1, column: 21),
            PythonLiteral(value: .int(512), span: 26..<29, line: 1, column: 27),
        ]))
        let expected = try PythonLiteralParser.parse("{'split_ring_mergeable': {64: {1024: 0.00}}, \"b\": {1: {2: 3.5e-1}}}")
        #expect(expected.entry(.string("split_ring_mergeable"))?.value.entry(.int(64))?.value.entry(.int(1024))?.value.value == .float(0))
        #expect(expected.entry(.string("b"))?.value.entry(.int(1))?.value.entry(.int(2))?.value.number == 0.35)
        #expect(try PythonLiteralParser.parse("True").value == .bool(true))
        #expect(try PythonLiteralParser.parse(" False # comment").value == .bool(false))
        #expect(try PythonLiteralParser.parse("None").value == .none)
        #expect(try PythonLiteralParser.parse("-1_000").value == .int(-1000))
        #expect(try PythonLiteralParser.parse("0x40").value == .int(64))
        #expect(try PythonLiteralParser.parse(".5").value == .float(0.5))
        #expect(try PythonLiteralParser.parse("'a\\'b\\n'").value == .string("a'b\n"))
        #expect(try PythonLiteralParser.parse("'é'").value == .string("é"))
        // An int key finds an equal float key, as in Python.
        #expect(try PythonLiteralParser.parse("{64.0: 1}").entry(.int(64)) != nil)
    }

    @Test(arguments: [
        ("{64: [1024]", "line 1, column 12: '{' opened at line 1, column 1 is not closed"),
        ("{64: 1, 64: 2}", "line 1, column 9: dict key 64 given twice (first at line 1, column 2)"),
        ("{64 [1]}", "line 1, column 5: expected ':' after dict key 64, found '['"),
        ("[1 2]", "line 1, column 4: expected ',' or ']' in the list opened at line 1, column 1, found '2'"),
        ("true", "line 1, column 1: 'true' is not Python; write True"),
        ("foo", "line 1, column 1: 'foo' is not a literal (names, calls and expressions are not allowed); quote strings: 'foo'"),
        ("(1, 2)", "line 1, column 1: tuples and parentheses are not supported here; use a list [...]"),
        ("'abc", "line 1, column 1: string opened at line 1, column 1 is not closed on its line"),
        ("007", "line 1, column 1: '007': leading zeros are not allowed in Python integers"),
        ("1.2.3", "line 1, column 1: '1.2.3' is not a number"),
        ("{[1]: 2}", "line 1, column 2: a dict key must be a number, string, True, False or None, not a list"),
        ("1 2", "line 1, column 3: unexpected '2' after the value"),
        ("", "line 1, column 1: expected a value, found nothing"),
        ("'\\x41'", "line 1, column 2: unsupported escape '\\x' in a string (\\\\, \\', \\\", \\n, \\t, \\r are)"),
        ("{1:\n 2,\n 3}", "line 3, column 3: expected ':' after dict key 3, found '}'"),
    ])
    func errors(text: String, message: String) {
        #expect(throws: PythonLiteralError.self) { try PythonLiteralParser.parse(text) }
        do { _ = try PythonLiteralParser.parse(text) } catch { #expect(error.description == message) }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let text = String(repeating: "[", count: 5000)
        do { _ = try PythonLiteralParser.parse(text); Issue.record("parsed") } catch {
            #expect(error.message == "nested more than 100 deep")
        }
    }

    /// A value over continuation lines of a config file, with comment and blank lines inside,
    /// ends at the first line that is not indented.
    @Test func configValueLayout() throws {
        let text = "x = {64: [1024],\r\n# a comment\n\n    1518: [1024]}\nnext = 1\n"
        let bytes = Array(text.utf8)
        let (literal, end) = try PythonLiteralParser.parse(bytes, from: 3, line: 1, column: 4, layout: .configValue)
        #expect(literal.entry(.int(1518))?.value.line == 4)
        #expect(String(decoding: bytes[literal.span], as: UTF8.self) == "{64: [1024],\r\n# a comment\n\n    1518: [1024]}")
        #expect(end >= literal.span.upperBound)
        // An unclosed value stops at the next key's line, and says where it was opened.
        let open = Array("x = {64: [1024],\nnext = 1\n".utf8)
        do { _ = try PythonLiteralParser.parse(open, from: 3, line: 1, column: 4, layout: .configValue); Issue.record("parsed") } catch {
            #expect(error.message == "'{' opened at line 1, column 5 is not closed")
            #expect(error.line == 2)
        }
    }
}
