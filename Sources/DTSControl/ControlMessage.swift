import Foundation

/// One JSON object received on a QMP or guest agent socket.
///
/// A line may be a reply, an event or a greeting, and the reader must route it (by reply `id`,
/// `event` name, `QMP` greeting, the agent's sync id) before anyone knows its type: that is what
/// the generic ``members`` (``JSONValue``) are for. Typed results (``QMPStatus``, ``GuestExecStatus``,
/// ...) are decoded from ``text``, the line as received, by their `Decodable` conformances.
struct ControlMessage: Sendable {
    /// The members, as generic JSON values.
    let members: [String: JSONValue]
    /// The JSON text as received (without the newline).
    let text: Data

    /// The member `key`, if present.
    subscript(key: String) -> JSONValue? { members[key] }

    /// The message as one JSON value (for logs).
    var value: JSONValue { .object(members) }

    /// Decodes the whole message as `Value`.
    /// - Throws: ``ControlError/protocolViolation(_:_:)`` naming `what` and the member at fault
    ///   (`query-status reply: return.running is missing`).
    func decode<Value: Decodable>(_ type: Value.Type, on endpoint: ControlEndpoint, what: String) throws -> Value {
        do {
            return try JSONDecoder().decode(Value.self, from: text)
        } catch let error as DecodingError {
            throw ControlError.protocolViolation(endpoint, "\(what): \(error.memberProblem)")
        }
    }
}

/// The `return` member of a reply, decoded as `Value`.
struct ReturnMember<Value: Decodable>: Decodable {
    /// The decoded value.
    let value: Value

    enum CodingKeys: String, CodingKey {
        case value = "return"
    }
}

extension DecodingError {
    /// What is wrong, naming the member by its path in the message: `return[0].cpu-index is missing`,
    /// `return.running is not Bool`.
    var memberProblem: String {
        func path(_ keys: [any CodingKey]) -> String {
            var text = ""
            for key in keys {
                if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
            return text.isEmpty ? "the message" : text
        }
        switch self {
        case .keyNotFound(let key, let context): return "\(path(context.codingPath + [key])) is missing"
        case .typeMismatch(let type, let context): return "\(path(context.codingPath)) is not \(type)"
        case .valueNotFound(let type, let context): return "\(path(context.codingPath)) is null, not \(type)"
        case .dataCorrupted(let context): return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default: return "\(self)"
        }
    }
}
