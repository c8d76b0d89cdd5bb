// ErrorCode: the `ERR <CODE>` vocabulary of docs/protocol.md. Every failure a
// client can cause maps to one of these; none of them closes the connection
// except BUSY on accept.

public enum ErrorCode: String, Sendable {
    case badcmd = "BADCMD"
    case badarg = "BADARG"
    case toolarge = "TOOLARGE"
    case notfound = "NOTFOUND"
    case noleader = "NOLEADER"
    case noquorum = "NOQUORUM"
    case busy = "BUSY"
    case auth = "AUTH"
}
