// ConfigFiles: reads the files a config key names (cluster_secret_file,
// client_token_file) for the pure ConfigParser, turning a failure into the
// reason an operator needs (no such file, permission denied, not UTF-8).
// Read at every load, so SIGHUP and --check see the file as it is now.
import Foundation
import Glibc
import MeshQCore

enum ConfigFiles {
    static func read(_ path: String) -> Result<String, ConfigFileReadError> {
        guard let data = FileManager.default.contents(atPath: path) else {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
                return .failure(.init(isDir.boolValue ? "is a directory" : "permission denied"))
            }
            return .failure(.init("no such file"))
        }
        guard let text = String(data: data, encoding: .utf8) else { return .failure(.init("not UTF-8 text")) }
        return .success(text)
    }
}
