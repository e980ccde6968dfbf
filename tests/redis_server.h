// Test servers for the remote cache tier: a real redis-server of the test's own on a
// free loopback port (no persistence), started and stopped by PID; fake servers that
// accept and never answer, or answer garbage; and a plain client for tampering.
//
//   RedisServer redis;
//   if (!redis.installed()) GTEST_SKIP() << "redis-server not installed";
//   ASSERT_TRUE(redis.Start());
//   options.remote.url = redis.url();
//   ...
//   redis.Kill();  // SIGKILL mid-run; Start() again restarts it on the same port
#ifndef ROPE_JIT_TESTS_REDIS_SERVER_H_
#define ROPE_JIT_TESTS_REDIS_SERVER_H_

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "hiredis/hiredis.h"

namespace rope_jit {

// A loopback TCP port that was free a moment ago (bound to port 0, then released).
inline int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  return port;
}

// A blocking hiredis connection for the test's own reads and writes (not the tier's).
class RedisClient {
 public:
  explicit RedisClient(int port) {
    const timeval timeout = {2, 0};
    context_ = redisConnectWithTimeout("127.0.0.1", port, timeout);
    if (context_ != nullptr && context_->err == 0) redisSetTimeout(context_, timeout);
  }
  ~RedisClient() {
    if (context_ != nullptr) redisFree(context_);
  }
  bool ok() const { return context_ != nullptr && context_->err == 0; }

  bool Ping() { return Run({"PING"}).has_value(); }
  bool Set(const std::string& key, const std::string& value) {
    return Run({"SET", key, value}).has_value();
  }
  // The value, or nullopt for no such key (or an error).
  std::optional<std::string> Get(const std::string& key) { return Run({"GET", key}); }
  bool FlushAll() { return Run({"FLUSHALL"}).has_value(); }

 private:
  std::optional<std::string> Run(const std::vector<std::string>& args) {
    if (!ok()) return std::nullopt;
    std::vector<const char*> argv;
    std::vector<size_t> sizes;
    for (const std::string& arg : args) {
      argv.push_back(arg.data());
      sizes.push_back(arg.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(context_, static_cast<int>(args.size()), argv.data(), sizes.data()));
    if (reply == nullptr) return std::nullopt;
    std::optional<std::string> result;
    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) {
      result = std::string(reply->str, reply->len);
    }
    freeReplyObject(reply);
    return result;
  }

  redisContext* context_ = nullptr;
};

class RedisServer {
 public:
  RedisServer() : port_(FreeLoopbackPort()) {}
  ~RedisServer() { Kill(); }

  static std::string Binary() {
    for (const char* path : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"}) {
      if (access(path, X_OK) == 0) return path;
    }
    return "";
  }
  bool installed() const { return !Binary().empty(); }
  int port() const { return port_; }
  std::string url() const { return absl::StrCat("redis://127.0.0.1:", port_); }

  // Starts (or restarts) it on port() and waits until it answers PING.
  bool Start() {
    if (pid_ > 0) return true;
    const std::string binary = Binary();
    const std::string port = std::to_string(port_);
    const char* tmp = std::getenv("TEST_TMPDIR");
    const std::string dir = tmp != nullptr ? tmp : "/tmp";
    pid_ = fork();
    if (pid_ == 0) {
      const int null = open("/dev/null", O_WRONLY);  // its start-up banner is noise here
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
      execl(binary.c_str(), binary.c_str(), "--port", port.c_str(), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", dir.c_str(), "--loglevel", "warning",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    for (int i = 0; i < 500; ++i) {
      if (RedisClient(port_).Ping()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // SIGKILL, as a crash would; the data is gone (no persistence).
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  const int port_;
  pid_t pid_ = -1;
};

// A loopback server that accepts connections and then, per `mode`, never answers,
// answers every read with a line that is not RESP, or claims a 2 GiB bulk string and
// streams bytes of it without end.
class FakeRedisServer {
 public:
  enum class Mode { kSilent, kGarbage, kEndlessBulk };

  explicit FakeRedisServer(Mode mode) : mode_(mode) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof(address);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
    listen(listen_fd_, 64);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeRedisServer() {
    stop_ = true;
    thread_.join();
    for (int fd : clients_) close(fd);
    close(listen_fd_);
  }
  std::string url() const { return absl::StrCat("redis://127.0.0.1:", port_); }

 private:
  void Serve() {
    while (!stop_) {
      std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}};
      for (int fd : clients_) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 10) <= 0) {
        if (mode_ == Mode::kEndlessBulk) Stream();
        continue;
      }
      if (fds[0].revents & POLLIN) {
        const int client = accept(listen_fd_, nullptr, nullptr);
        if (client >= 0) clients_.push_back(client);
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if ((fds[i].revents & POLLIN) == 0) continue;
        char buffer[4096];
        if (read(fds[i].fd, buffer, sizeof(buffer)) <= 0) continue;
        if (mode_ == Mode::kGarbage) {
          const char garbage[] = "HTTP/1.1 400 Bad Request\r\n\r\n\x01\x02";
          send(fds[i].fd, garbage, sizeof(garbage) - 1, MSG_NOSIGNAL);
        } else if (mode_ == Mode::kEndlessBulk) {
          const char header[] = "$2147483648\r\n";
          send(fds[i].fd, header, sizeof(header) - 1, MSG_NOSIGNAL);
          streaming_.push_back(fds[i].fd);
        }
      }
      if (mode_ == Mode::kEndlessBulk) Stream();
    }
  }
  void Stream() {  // kEndlessBulk: more of the claimed value
    static const std::string chunk(64 << 10, 'x');
    for (int fd : streaming_) send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }

  const Mode mode_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::vector<int> clients_;    // the serving thread's only
  std::vector<int> streaming_;  // kEndlessBulk: the clients sent the header
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace rope_jit

#endif  // ROPE_JIT_TESTS_REDIS_SERVER_H_
