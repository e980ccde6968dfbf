#include "jit/remote_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <initializer_list>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "hiredis/hiredis.h"
#include "openssl/crypto.h"
#include "openssl/evp.h"
#include "openssl/hmac.h"

namespace rope_jit {
namespace {

constexpr absl::string_view kMagic = "RJR1";
constexpr size_t kTagBytes = 32;  // HMAC-SHA256
// Domain separation: a tag made for anything else with the same secret never verifies.
constexpr absl::string_view kTagLabel = "rope_jit remote cache entry v1\n";
constexpr size_t kMinSecretBytes = 32;
constexpr size_t kMaxSecretBytes = 4096;  // bounds the read of the key file

void Warn(const std::string& message) { std::fprintf(stderr, "rope_jit: %s\n", message.c_str()); }

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

std::string Tag(absl::string_view secret, const CacheKey& key, absl::string_view entry) {
  std::string message(kTagLabel);
  const uint64_t key_size = key.text.size();
  for (int i = 0; i < 8; ++i) message.push_back(static_cast<char>(key_size >> (8 * i)));
  message += key.text;
  message.append(entry.data(), entry.size());
  unsigned char tag[EVP_MAX_MD_SIZE];
  unsigned int tag_size = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(message.data()), message.size(), tag,
           &tag_size) == nullptr ||
      tag_size != kTagBytes) {
    return std::string();  // never equal to a stored tag's kTagBytes
  }
  return std::string(reinterpret_cast<const char*>(tag), tag_size);
}

// The payload of a sealed value, or why it is not to be used.
absl::StatusOr<std::string> Open(absl::string_view secret, const CacheKey& key,
                                 absl::string_view value) {
  if (value.size() < kMagic.size() + kTagBytes) {
    return absl::DataLossError(absl::StrCat("remote value of ", value.size(), " bytes"));
  }
  if (!absl::StartsWith(value, kMagic)) return absl::DataLossError("remote value: bad magic");
  const absl::string_view tag = value.substr(kMagic.size(), kTagBytes);
  const absl::string_view entry = value.substr(kMagic.size() + kTagBytes);
  const std::string expected = Tag(secret, key, entry);
  if (expected.size() != kTagBytes || CRYPTO_memcmp(expected.data(), tag.data(), kTagBytes) != 0) {
    return absl::PermissionDeniedError("remote value: tag does not verify");
  }
  absl::StatusOr<absl::string_view> payload = DecodeCacheEntry(entry, key);
  if (!payload.ok()) return payload.status();
  return std::string(*payload);
}

absl::StatusOr<std::string> ReadSecret(const std::string& path) {
  if (path.empty()) {
    return absl::FailedPreconditionError(
        "no key file (ROPE_JIT_REMOTE_CACHE_KEY_FILE): remote entries must be authenticated");
  }
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("key file ", path, ": ", std::strerror(errno)));
  }
  struct stat info;
  std::string secret;
  absl::Status status;
  if (fstat(fd, &info) != 0) {
    status = absl::FailedPreconditionError(
        absl::StrCat("key file ", path, ": ", std::strerror(errno)));
  } else if (!S_ISREG(info.st_mode)) {
    status = absl::FailedPreconditionError(
        absl::StrCat("key file ", path, " is not a regular file"));
  } else if (info.st_uid != geteuid()) {
    status = absl::PermissionDeniedError(
        absl::StrCat("key file ", path, " is not owned by this user"));
  } else if ((info.st_mode & 077) != 0) {
    status = absl::PermissionDeniedError(absl::StrCat(
        "key file ", path, " is accessible by group or others (mode ",
        absl::StrFormat("%o", info.st_mode & 0777), "); chmod 600 it"));
  } else if (info.st_size < static_cast<off_t>(kMinSecretBytes) ||
             info.st_size > static_cast<off_t>(kMaxSecretBytes)) {
    status = absl::FailedPreconditionError(absl::StrCat("key file ", path, " holds ", info.st_size,
                                                        " bytes; it needs ", kMinSecretBytes,
                                                        " to ", kMaxSecretBytes));
  } else {
    secret.resize(info.st_size);
    size_t done = 0;
    while (done < secret.size()) {
      const ssize_t n = read(fd, &secret[done], secret.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += n;
    }
    if (done != secret.size()) {
      status = absl::FailedPreconditionError(absl::StrCat("key file ", path, ": short read"));
    }
  }
  close(fd);
  if (!status.ok()) return status;
  return secret;
}

// Milliseconds left before `deadline`, at least 0.
int MillisecondsLeft(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// Waits for `events` on `fd` until the deadline: 1 ready, 0 timed out, -1 error.
int WaitFor(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    struct pollfd entry = {fd, events, 0};
    const int ready = poll(&entry, 1, MillisecondsLeft(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return ready;
    return 1;
  }
}

// The length a bulk-string reply not yet complete claims, or 0: an oversized value is
// refused on its header ("$<n>\r\n"), before its bytes arrive. The reader may already
// have consumed the '$' (its current task is then a string).
uint64_t ClaimedBulkLength(const redisReader* reader) {
  absl::string_view buffered(reader->buf + reader->pos, reader->len - reader->pos);
  const bool in_string =
      reader->ridx >= 0 && reader->rstack[reader->ridx].type == REDIS_REPLY_STRING;
  if (!absl::ConsumePrefix(&buffered, "$") && !in_string) return 0;
  const size_t end = buffered.find("\r\n");
  uint64_t length = 0;
  if (end == absl::string_view::npos || !absl::SimpleAtoi(buffered.substr(0, end), &length)) {
    return 0;
  }
  return length;
}

}  // namespace

RemoteCacheOptions RemoteCacheOptions::FromEnvironment() {
  RemoteCacheOptions options;
  auto text = [](const char* name) -> const char* {
    const char* value = std::getenv(name);
    return value != nullptr && value[0] != '\0' ? value : nullptr;
  };
  auto number = [&](const char* name, int64_t min, absl::Duration unit, absl::Duration* out) {
    const char* value = text(name);
    if (value == nullptr) return;
    int64_t parsed = 0;
    if (!absl::SimpleAtoi(value, &parsed) || parsed < min) {
      Warn(absl::StrCat("ignoring ", name, "=", value, ": not a whole number >= ", min));
      return;
    }
    *out = unit * parsed;
  };
  if (const char* url = text("ROPE_JIT_REMOTE_CACHE")) options.url = url;
  if (const char* prefix = text("ROPE_JIT_REMOTE_CACHE_PREFIX")) options.prefix = prefix;
  if (const char* key_file = text("ROPE_JIT_REMOTE_CACHE_KEY_FILE")) options.key_file = key_file;
  number("ROPE_JIT_REMOTE_CACHE_TTL_S", 0, absl::Seconds(1), &options.ttl);
  number("ROPE_JIT_REMOTE_CACHE_TIMEOUT_MS", 1, absl::Milliseconds(1), &options.timeout);
  return options;
}

absl::StatusOr<std::unique_ptr<RemoteCache>> RemoteCache::Create(RemoteCacheOptions options) {
  Endpoint endpoint;
  absl::string_view rest = options.url;
  auto bad_url = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "remote cache url \"", options.url, "\": ", why,
        " (want redis://host:port[/db] or unix:///path[?db=N])"));
  };
  absl::string_view db_text;
  if (absl::ConsumePrefix(&rest, "redis://")) {
    const size_t slash = rest.find('/');
    if (slash != absl::string_view::npos) {
      db_text = rest.substr(slash + 1);
      rest = rest.substr(0, slash);
    }
    if (absl::StrContains(rest, '@')) return bad_url("credentials in the url are not supported");
    const size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos || colon == 0) return bad_url("no host:port");
    endpoint.host = std::string(rest.substr(0, colon));
    if (!absl::SimpleAtoi(rest.substr(colon + 1), &endpoint.port) || endpoint.port < 1 ||
        endpoint.port > 65535) {
      return bad_url("bad port");
    }
  } else if (absl::ConsumePrefix(&rest, "unix://")) {
    const size_t query = rest.find('?');
    if (query != absl::string_view::npos) {
      absl::string_view parameter = rest.substr(query + 1);
      if (!absl::ConsumePrefix(&parameter, "db=")) return bad_url("unknown parameter");
      db_text = parameter;
      rest = rest.substr(0, query);
    }
    if (!absl::StartsWith(rest, "/")) return bad_url("the socket path must be absolute");
    endpoint.path = std::string(rest);
  } else {
    return bad_url("unknown scheme");
  }
  if (!db_text.empty() && (!absl::SimpleAtoi(db_text, &endpoint.db) || endpoint.db < 0)) {
    return bad_url("bad database number");
  }
  if (options.timeout <= absl::ZeroDuration() || options.backoff <= absl::ZeroDuration() ||
      options.max_backoff < options.backoff || options.ttl < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("remote cache: timeout and backoff must be positive");
  }
  if (options.max_value_bytes < kMagic.size() + kTagBytes + kCacheEntryOverhead) {
    return absl::InvalidArgumentError(
        absl::StrCat("remote cache: max_value_bytes ", options.max_value_bytes, " is too small"));
  }
  absl::StatusOr<std::string> secret = ReadSecret(options.key_file);
  if (!secret.ok()) return secret.status();
  return std::unique_ptr<RemoteCache>(
      new RemoteCache(std::move(options), std::move(endpoint), *std::move(secret)));
}

RemoteCache::RemoteCache(RemoteCacheOptions options, Endpoint endpoint, std::string secret)
    : options_(std::move(options)),
      endpoint_(std::move(endpoint)),
      secret_(std::move(secret)),
      current_backoff_(options_.backoff) {}

RemoteCache::~RemoteCache() {
  for (redisContext* context : idle_) redisFree(context);
}

std::string RemoteCache::SealEntry(absl::string_view secret, const CacheKey& key,
                                   absl::string_view entry) {
  return absl::StrCat(kMagic, Tag(secret, key, entry), entry);
}

bool RemoteCache::Admit(bool* probe) {
  std::lock_guard<std::mutex> lock(mu_);
  *probe = false;
  if (!open_) return true;
  if (Clock::now() < open_until_ || probing_) {
    ++stats_.skipped;
    return false;
  }
  probing_ = true;  // half open: this caller alone tries
  *probe = true;
  return true;
}

void RemoteCache::Succeeded(bool probe) {
  if (!probe) return;
  std::lock_guard<std::mutex> lock(mu_);
  probing_ = false;
  open_ = false;
  current_backoff_ = options_.backoff;
}

void RemoteCache::Failed(bool probe, const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  // The other pooled connections most likely went the same way.
  for (redisContext* context : idle_) redisFree(context);
  idle_.clear();
  if (probe) {
    probing_ = false;
    current_backoff_ = std::min(current_backoff_ * 2, options_.max_backoff);
  } else if (open_) {
    return;  // another caller opened it already: one opening (and warning) per period
  }
  open_ = true;
  open_until_ = Clock::now() + absl::ToChronoNanoseconds(current_backoff_);
  ++stats_.circuit_opens;
  Warn(absl::StrCat("remote cache ", options_.url, ": ", why, "; compiling locally, next try in ",
                    absl::FormatDuration(current_backoff_), " (circuit opened ",
                    stats_.circuit_opens, " times)"));
}

redisContext* RemoteCache::Connect(Clock::time_point deadline, std::string* why,
                                   bool* timed_out) {
  redisContext* context = endpoint_.path.empty()
                              ? redisConnectNonBlock(endpoint_.host.c_str(), endpoint_.port)
                              : redisConnectUnixNonBlock(endpoint_.path.c_str());
  if (context == nullptr) {
    *why = "cannot allocate a connection";
    return nullptr;
  }
  if (context->err != 0) {
    *why = absl::StrCat("connect: ", context->errstr);
    redisFree(context);
    return nullptr;
  }
  const int ready = WaitFor(context->fd, POLLOUT, deadline);
  int error = 0;
  socklen_t size = sizeof(error);
  if (ready == 0) {
    *timed_out = true;
    *why = "connect timed out";
  } else if (ready < 0 || getsockopt(context->fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) {
    *why = absl::StrCat("connect: ", std::strerror(errno));
  } else if (error != 0) {
    *why = absl::StrCat("connect: ", std::strerror(error));
  } else if (endpoint_.db != 0) {
    const Reply selected = RunOn(context, {"SELECT", std::to_string(endpoint_.db)}, deadline);
    if (selected.kind == Reply::Kind::kStatus) return context;
    *timed_out = selected.timed_out;
    *why = absl::StrCat("SELECT ", endpoint_.db, ": ", selected.text);
  } else {
    return context;
  }
  redisFree(context);
  return nullptr;
}

RemoteCache::Reply RemoteCache::RunOn(redisContext* context, const std::vector<std::string>& args,
                                      Clock::time_point deadline) {
  Reply reply;
  std::vector<const char*> argv;
  std::vector<size_t> sizes;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    sizes.push_back(arg.size());
  }
  char* command = nullptr;
  const int command_size =
      redisFormatCommandArgv(&command, static_cast<int>(args.size()), argv.data(), sizes.data());
  if (command_size < 0) {
    reply.text = "cannot format the command";
    return reply;
  }
  // Sent by hand with MSG_NOSIGNAL: hiredis's write() would raise SIGPIPE on a peer
  // that went away, and a library must not change the process's signal handling.
  size_t sent = 0;
  while (sent < static_cast<size_t>(command_size)) {
    const ssize_t n = send(context->fd, command + sent, command_size - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      const int ready = WaitFor(context->fd, POLLOUT, deadline);
      if (ready > 0) continue;
      reply.timed_out = ready == 0;
      reply.text = ready == 0 ? "send timed out" : absl::StrCat("send: ", std::strerror(errno));
    } else {
      reply.text = absl::StrCat("send: ", std::strerror(errno));
    }
    redisFreeCommand(command);
    return reply;
  }
  redisFreeCommand(command);

  // Bound the buffered reply before hiredis allocates the value: the reader only
  // allocates a bulk string once all of it has arrived, so capping what is buffered
  // caps what is allocated, whatever length the server claims.
  const size_t max_buffered = options_.max_value_bytes + 64;
  for (;;) {
    void* parsed = nullptr;
    if (redisReaderGetReply(context->reader, &parsed) != REDIS_OK) {
      reply.text = absl::StrCat("protocol error: ", context->reader->errstr);
      return reply;
    }
    if (parsed != nullptr) {
      const redisReply* got = static_cast<const redisReply*>(parsed);
      switch (got->type) {
        case REDIS_REPLY_STRING:
          reply.kind = Reply::Kind::kString;
          reply.text.assign(got->str, got->len);
          break;
        case REDIS_REPLY_NIL:
          reply.kind = Reply::Kind::kNil;
          break;
        case REDIS_REPLY_STATUS:
          reply.kind = Reply::Kind::kStatus;
          reply.text.assign(got->str, got->len);
          break;
        case REDIS_REPLY_INTEGER:
          reply.kind = Reply::Kind::kInteger;
          reply.integer = got->integer;
          break;
        case REDIS_REPLY_ERROR:
          reply.kind = Reply::Kind::kError;
          reply.text.assign(got->str, got->len);
          break;
        default:
          reply.kind = Reply::Kind::kFailed;
          reply.text = absl::StrCat("unexpected reply type ", got->type);
          break;
      }
      freeReplyObject(parsed);
      return reply;
    }
    if (ClaimedBulkLength(context->reader) > options_.max_value_bytes ||
        context->reader->len - context->reader->pos > max_buffered) {
      reply.kind = Reply::Kind::kTooLarge;
      reply.text = absl::StrCat("reply larger than ", options_.max_value_bytes, " bytes");
      return reply;
    }
    const int ready = WaitFor(context->fd, POLLIN, deadline);
    if (ready <= 0) {
      reply.timed_out = ready == 0;
      reply.text = ready == 0 ? "reply timed out" : absl::StrCat("poll: ", std::strerror(errno));
      return reply;
    }
    if (redisBufferRead(context) != REDIS_OK) {
      reply.text = context->errstr;
      return reply;
    }
  }
}

RemoteCache::Reply RemoteCache::Command(const std::vector<std::string>& args,
                                        std::initializer_list<Reply::Kind> expected) {
  bool probe = false;
  if (!Admit(&probe)) {
    Reply skipped;
    skipped.kind = Reply::Kind::kSkipped;
    skipped.text = "circuit open";
    return skipped;
  }
  const Clock::time_point deadline = Clock::now() + absl::ToChronoNanoseconds(options_.timeout);
  redisContext* context = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      context = idle_.back();
      idle_.pop_back();
    }
  }
  Reply reply;
  if (context != nullptr) {
    reply = RunOn(context, args, deadline);
    if (reply.kind == Reply::Kind::kFailed && !reply.timed_out) {
      // A pooled connection the server closed meanwhile (e.g. Redis restarted): one
      // fresh connection within the same deadline before calling it a failure.
      redisFree(context);
      context = nullptr;
    }
  }
  if (context == nullptr) {
    reply = Reply();
    context = Connect(deadline, &reply.text, &reply.timed_out);
    if (context != nullptr) reply = RunOn(context, args, deadline);
  }
  const bool answered = reply.kind == Reply::Kind::kError ||
                        std::find(expected.begin(), expected.end(), reply.kind) != expected.end();
  if (!answered && reply.kind != Reply::Kind::kFailed) {
    reply.text = absl::StrCat("unexpected reply to ", args[0]);  // garbage, not an entry
    reply.kind = Reply::Kind::kFailed;
  }
  // A connection whose reply was not read to the end cannot be reused.
  const bool usable = context != nullptr && reply.kind != Reply::Kind::kFailed &&
                      reply.kind != Reply::Kind::kTooLarge;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (reply.timed_out) {
      ++stats_.timeouts;
    } else if (reply.kind == Reply::Kind::kFailed || reply.kind == Reply::Kind::kError) {
      ++stats_.errors;
    }
    if (usable) {
      idle_.push_back(context);
      context = nullptr;
    }
  }
  if (context != nullptr) redisFree(context);
  // An error reply or an oversized value is the data's fault, not the server's: only
  // transport failures and garbage open the circuit.
  if (reply.kind == Reply::Kind::kFailed) {
    Failed(probe, reply.text);
  } else {
    Succeeded(probe);
  }
  return reply;
}

absl::StatusOr<std::string> RemoteCache::Get(const CacheKey& key) {
  const Clock::time_point start = Clock::now();
  const Reply reply = Command({"GET", RedisKey(key)},
                              {Reply::Kind::kNil, Reply::Kind::kString, Reply::Kind::kTooLarge});
  absl::StatusOr<std::string> payload = absl::NotFoundError(reply.text);
  bool bad = reply.kind == Reply::Kind::kTooLarge;
  if (reply.kind == Reply::Kind::kString) {
    payload = Open(secret_, key, reply.text);
    bad = !payload.ok();
    if (bad) {
      payload = absl::NotFoundError(
          absl::StrCat("bad remote entry: ", payload.status().message()));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  stats_.get_ms += MillisecondsSince(start);
  if (reply.kind == Reply::Kind::kString) stats_.bytes_read += reply.text.size();
  if (reply.kind == Reply::Kind::kNil) ++stats_.misses;
  if (bad) ++stats_.bad_entries;
  if (payload.ok()) ++stats_.hits;
  return payload;
}

absl::Status RemoteCache::Put(const CacheKey& key, absl::string_view payload) {
  const Clock::time_point start = Clock::now();
  const std::string value = SealEntry(secret_, key, EncodeCacheEntry(key, payload));
  if (value.size() > options_.max_value_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("entry of ", value.size(),
                                                   " bytes exceeds max_value_bytes"));
  }
  std::vector<std::string> args = {"SET", RedisKey(key), value};
  if (options_.ttl > absl::ZeroDuration()) {
    args.push_back("PX");
    args.push_back(std::to_string(std::max<int64_t>(1, absl::ToInt64Milliseconds(options_.ttl))));
  }
  const Reply reply = Command(args, {Reply::Kind::kStatus});
  const bool stored = reply.kind == Reply::Kind::kStatus;
  std::lock_guard<std::mutex> lock(mu_);
  stats_.put_ms += MillisecondsSince(start);
  if (reply.kind == Reply::Kind::kSkipped) return absl::UnavailableError(reply.text);
  if (!stored) {
    ++stats_.write_failures;
    return absl::UnavailableError(absl::StrCat("remote cache SET: ", reply.text));
  }
  ++stats_.writes;
  stats_.bytes_written += value.size();
  return absl::OkStatus();
}

absl::StatusOr<bool> RemoteCache::Contains(const CacheKey& key) {
  const Reply reply = Command({"EXISTS", RedisKey(key)}, {Reply::Kind::kInteger});
  if (reply.kind != Reply::Kind::kInteger) {
    return absl::UnavailableError(absl::StrCat("remote cache EXISTS: ", reply.text));
  }
  return reply.integer > 0;
}

RemoteCacheStats RemoteCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace rope_jit
