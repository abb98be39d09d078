import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

extension ReportWriters {
    /// JUnit XML as Jenkins and GitLab read it: one `<testsuite>` per suite and DUT/target,
    /// `<failure>` for FAILED and BLOCKED, `<error>` for ERROR, `<skipped>` for SKIPPED,
    /// `time` in seconds, the case log path in `<system-out>`. FoundationXML writes and escapes it.
    public static func junitXML(_ report: RunReport) -> String {
        let several = report.executions.count > 1
        let counts = report.counts
        let root = element("testsuites", [
            ("name", "dts"), ("tests", "\(report.allCases.count)"),
            ("failures", "\((counts[.failed] ?? 0) + (counts[.blocked] ?? 0))"), ("errors", "\(counts[.error] ?? 0)"),
            ("skipped", "\(counts[.skipped] ?? 0)"), ("time", seconds(report.duration)),
        ])
        for execution in report.executions {
            for suite in execution.suites {
                let name = several ? "\(suite.name) [\(execution.dut) \(execution.target)]" : suite.name
                let timestamp = suite.cases.first?.attempts.first?.start ?? report.start
                let suiteElement = element("testsuite", [
                    ("name", name), ("tests", "\(suite.cases.count)"),
                    ("failures", "\(suite.cases.filter { $0.status == .failed || $0.status == .blocked }.count)"),
                    ("errors", "\(suite.cases.filter { $0.status == .error }.count)"),
                    ("skipped", "\(suite.cases.filter { $0.status == .skipped }.count)"),
                    ("time", seconds(suite.duration)), ("timestamp", isoNoZone(timestamp)), ("hostname", execution.dut),
                ])
                let properties = element("properties")
                var values = [("dut", execution.dut), ("target", execution.target), ("execution", execution.execution)]
                if let error = suite.setUpAllError { values.append(("setUpAll_error", error)) }
                for (key, value) in values { properties.addChild(element("property", [("name", key), ("value", value)])) }
                suiteElement.addChild(properties)
                for result in suite.cases { suiteElement.addChild(testcase(result, classname: suite.name)) }
                root.addChild(suiteElement)
            }
        }
        let document = XMLDocument(rootElement: root)
        document.version = "1.0"
        document.characterEncoding = "UTF-8"
        return document.xmlString(options: [.nodePrettyPrint, .nodeCompactEmptyElement])
    }

    /// One `<testcase>`: its outcome element and `<system-out>` with the log path and every attempt.
    private static func testcase(_ result: CaseResult, classname: String) -> XMLElement {
        let testcase = element("testcase", [("name", result.name), ("classname", classname), ("time", seconds(result.duration))])
        let message = result.reason ?? result.status.rawValue
        switch result.status {
        case .passed: break
        case .failed, .blocked:
            testcase.addChild(element("failure", [("type", result.status.rawValue), ("message", message)], text: message))
        case .error:
            testcase.addChild(element("error", [("type", "ERROR"), ("message", message)], text: message))
        case .skipped:
            testcase.addChild(element("skipped", [("message", message)]))
        }
        var out = "log: \(result.log)\n"
        for (index, attempt) in result.attempts.enumerated() {
            out += "attempt \(index + 1): \(attempt.status.rawValue) in \(seconds(attempt.duration)) s"
            out += attempt.reason.map { ": \($0)" } ?? ""
            out += "\n"
        }
        testcase.addChild(element("system-out", text: out))
        return testcase
    }

    /// An element with attributes in this order and optional text; XML-forbidden characters dropped.
    private static func element(_ name: String, _ attributes: [(String, String)] = [], text: String? = nil) -> XMLElement {
        let element = text.map { XMLElement(name: name, stringValue: xmlCharacters($0)) } ?? XMLElement(name: name)
        for (key, value) in attributes {
            let attribute = XMLNode(kind: .attribute)
            attribute.name = key
            attribute.stringValue = xmlCharacters(value)
            element.addAttribute(attribute)
        }
        return element
    }
}
