import Testing
import DTS

@Test func shellQuotingRoundTrips() {
    #expect(ShellQuoting.quote("plain-arg_1.0") == "plain-arg_1.0")
    #expect(ShellQuoting.quote("") == "''")
    #expect(ShellQuoting.quote("a b") == "'a b'")
    #expect(ShellQuoting.quote("it's") == "'it'\\''s'")
    #expect(ShellQuoting.join(["echo", "$HOME", ";rm"]) == "echo '$HOME' ';rm'")
}
