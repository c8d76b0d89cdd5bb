// Role: what a node is in its cluster right now. One type for the election
// (which decides it) and the node (which acts on it): a leader of an epoch,
// a candidate asking for votes, or a follower (with or without a known
// leader). The raw values are the words STATUS and the logs print.

public enum Role: String, Sendable {
    case leader, follower, candidate
}
