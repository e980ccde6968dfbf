// The remote cache tier (jit/remote_cache.h) inside the kernel service, against a
// redis-server of the test's own on loopback and against fake servers: sharing between
// services and processes, tampered entries, faults and their cost, and a stampede of
// processes. The compiler is tests/fake_compiler.h: these tests are about the tier.
#include "jit/remote_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "jit/cache_entry.h"
#include "jit/kernel_service.h"
#include "rope/kernel_specs.h"
#include "tests/fake_compiler.h"
#include "tests/fake_runtime.h"
#include "tests/redis_server.h"
#include "tests/subprocess.h"
#include "tests/test_files.h"

namespace rope_jit {
namespace {

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string RandomBytes(size_t size) {
  std::random_device device;
  std::string bytes(size, '\0');
  for (char& byte : bytes) byte = static_cast<char>(device());
  return bytes;
}

// A fleet secret in a file of mode `mode`.
std::string WriteKeyFile(const std::string& secret, mode_t mode = 0600) {
  const std::string path = TempPath("fleet_key");
  {
    std::ofstream out(path, std::ios::binary);
    out << secret;
  }
  chmod(path.c_str(), mode);
  return path;
}

#define REQUIRE_REDIS(redis)                                                       \
  do {                                                                             \
    if (!(redis).installed()) GTEST_SKIP() << "redis-server is not installed";     \
    ASSERT_TRUE((redis).Start()) << "redis-server did not start on " << (redis).url(); \
  } while (0)

KernelSpec Spec(int head_dim, const std::string& target = "sm_90") {
  RopeConfig config;
  config.head_dim = head_dim;
  absl::StatusOr<KernelSpec> spec = RopeKernelSpec(config, RopeKernel::kRope, target);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return *spec;
}

// A service with the fake compiler, its own disk directory ("" for none) and `url`.
struct Node {
  Node(const std::string& url, const std::string& key_file, const std::string& disk_dir,
       absl::Duration timeout = absl::Milliseconds(100),
       absl::Duration backoff = absl::Seconds(1)) {
    ServiceOptions options;
    options.disk.dir = disk_dir;
    options.compiler_for_target = compiler.AsLookup();
    options.remote.url = url;
    options.remote.key_file = key_file;
    options.remote.timeout = timeout;
    options.remote.backoff = backoff;
    service = std::make_unique<KernelService>(options);
  }
  FakeCompiler compiler;
  std::unique_ptr<KernelService> service;
};

std::string RedisKeyOf(KernelService& service, const KernelSpec& spec) {
  absl::StatusOr<CacheKey> key = service.KeyFor(spec);
  EXPECT_TRUE(key.ok()) << key.status();
  return "rope_jit:" + key->hex;
}

TEST(RemoteCacheTest, UrlsAndKeyFilesAreCheckedAndATierWithoutAGoodKeyIsRefused) {
  const std::string good_key = WriteKeyFile(RandomBytes(32));
  auto create = [](const std::string& url, const std::string& key_file) {
    RemoteCacheOptions options;
    options.url = url;
    options.key_file = key_file;
    return RemoteCache::Create(options).status();
  };
  for (const char* url : {"redis://127.0.0.1:6379", "redis://cache.internal:7000/3",
                          "unix:///run/redis.sock", "unix:///run/redis.sock?db=2"}) {
    EXPECT_TRUE(create(url, good_key).ok()) << url << ": " << create(url, good_key);
  }
  for (const char* url : {"http://127.0.0.1:6379", "redis://127.0.0.1", "redis://h:0",
                          "redis://h:70000", "redis://h:1/x", "redis://:secret@h:1",
                          "unix://relative.sock", "unix:///s.sock?x=1", "redis://:1"}) {
    EXPECT_EQ(create(url, good_key).code(), absl::StatusCode::kInvalidArgument) << url;
  }
  const std::string url = "redis://127.0.0.1:1";
  EXPECT_EQ(create(url, "").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(create(url, TempPath("missing")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(create(url, WriteKeyFile(RandomBytes(31))).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(create(url, WriteKeyFile(RandomBytes(64), 0640)).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(create(url, WriteKeyFile(RandomBytes(64), 0604)).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(create(url, TestTempRoot()).code(), absl::StatusCode::kFailedPrecondition);

  // In the service: no tier (one warning), and serving goes on.
  Node node(url, WriteKeyFile(RandomBytes(32), 0644), "");
  EXPECT_EQ(node.service->remote(), nullptr);
  ASSERT_TRUE(node.service->GetCodeObject(Spec(64)).ok());
  EXPECT_FALSE(node.service->stats().remote_enabled);
}

TEST(RemoteCacheTest, SecondNodeGetsARemoteHitAndKeepsItOnDisk) {
  RedisServer redis;
  REQUIRE_REDIS(redis);
  const std::string key_file = WriteKeyFile(RandomBytes(48));
  FakeRuntime runtime("sm_90");
  Node first(redis.url(), key_file, TempPath("first_disk"));
  ASSERT_TRUE(first.service->GetFunction(Spec(64, ""), runtime, 0, "rope_apply_aligned").ok());
  ASSERT_TRUE(first.service->GetCodeObject(Spec(128)).ok());
  ServiceStats stats = first.service->stats();
  EXPECT_TRUE(stats.remote_enabled);
  EXPECT_EQ(stats.compiles, 2u);
  EXPECT_EQ(stats.remote.misses, 2u);
  EXPECT_EQ(stats.remote.writes, 2u);
  EXPECT_GT(stats.remote.bytes_written, 0u);

  const std::string second_disk = TempPath("second_disk");
  Node second(redis.url(), key_file, second_disk);
  absl::StatusOr<FunctionHandle> function =
      second.service->GetFunction(Spec(64, ""), runtime, 0, "rope_apply_aligned");
  ASSERT_TRUE(function.ok()) << function.status();
  absl::StatusOr<std::string> code = second.service->GetCodeObject(Spec(128));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, *first.service->GetCodeObject(Spec(128)));
  stats = second.service->stats();
  EXPECT_EQ(stats.compiles, 0u);
  EXPECT_EQ(second.compiler.compiles(), 0);
  EXPECT_EQ(stats.remote.hits, 2u);
  EXPECT_EQ(stats.remote.bad_entries, 0u);
  EXPECT_GT(stats.remote.bytes_read, 0u);
  EXPECT_EQ(stats.misses, 0u);
  // Its disk tier now holds both: a third node on that disk never asks Redis.
  Node third(redis.url(), key_file, second_disk);
  ASSERT_TRUE(third.service->GetCodeObject(Spec(64)).ok());
  ASSERT_TRUE(third.service->GetCodeObject(Spec(128)).ok());
  EXPECT_EQ(third.service->stats().disk_hits, 2u);
  EXPECT_EQ(third.service->stats().remote.hits + third.service->stats().remote.misses, 0u);
}

// Each tampered value is never served (the node gets the compiler's bytes), is counted,
// and is replaced by the node's compile, so that the next node gets a good hit.
TEST(RemoteCacheTest, TamperedEntriesAreNeverUsedAndAreReplaced) {
  RedisServer redis;
  REQUIRE_REDIS(redis);
  const std::string secret = RandomBytes(32);
  const std::string key_file = WriteKeyFile(secret);
  Node reference("", "", "");  // the bytes a compile gives, without any remote tier
  const KernelSpec spec = Spec(64);
  const KernelSpec other_spec = Spec(128);
  const std::string good = *reference.service->GetCodeObject(spec);
  const CacheKey key = *reference.service->KeyFor(spec);
  const CacheKey other_key = *reference.service->KeyFor(other_spec);
  auto seal = [](const std::string& with, const CacheKey& under, const std::string& payload) {
    return RemoteCache::SealEntry(with, under, EncodeCacheEntry(under, payload));
  };
  const std::string sealed = seal(secret, key, good);

  std::string flipped_payload = sealed;
  flipped_payload[flipped_payload.size() - 3] ^= 0x01;
  std::string flipped_tag = sealed;
  flipped_tag[10] ^= 0x80;
  // A valid self-checksummed entry for this key, tagged with another secret.
  const std::string forged = seal(RandomBytes(32), key, "\x7f" "ELF evil");
  // A genuine entry of another key (its tag valid for it) stored under this key.
  const std::string other = seal(secret, other_key, good);
  // An entry whose header claims a 2 GiB payload, tagged correctly (as only a holder of
  // the secret could): the entry's own validation must still refuse it.
  std::string entry = EncodeCacheEntry(key, good);
  const size_t length_at = 16 + key.text.size();
  const uint64_t claimed = 2ull << 30;
  for (int i = 0; i < 8; ++i) entry[length_at + i] = static_cast<char>(claimed >> (8 * i));
  const std::string huge_claim = RemoteCache::SealEntry(secret, key, entry);

  const std::map<std::string, std::string> cases = {
      {"payload byte flipped", flipped_payload},
      {"tag byte flipped", flipped_tag},
      {"tag made with another secret", forged},
      {"another key's genuine entry", other},
      {"2 GiB claimed length", huge_claim},
      {"empty value", ""},
      {"magic only", "RJR1"},
  };
  RedisClient client(redis.port());
  ASSERT_TRUE(client.ok());
  for (const auto& [name, value] : cases) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(client.Set("rope_jit:" + key.hex, value));
    Node node(redis.url(), key_file, TempPath("tamper_disk"));
    FakeRuntime runtime("sm_90");
    KernelSpec device_spec = spec;
    device_spec.target = "";
    ASSERT_TRUE(node.service->GetFunction(device_spec, runtime, 0, "rope_apply_aligned").ok());
    absl::StatusOr<std::string> code = node.service->GetCodeObject(spec);
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, good);
    const ServiceStats stats = node.service->stats();
    EXPECT_EQ(stats.remote.bad_entries, 1u);
    EXPECT_EQ(stats.remote.hits, 0u);
    EXPECT_EQ(stats.compiles, 1u);
    EXPECT_EQ(stats.loads, 1u);
    EXPECT_EQ(stats.load_failures, 0u);
    EXPECT_EQ(stats.remote.writes, 1u);
    EXPECT_EQ(client.Get("rope_jit:" + key.hex), sealed) << "not replaced";
    Node next(redis.url(), key_file, TempPath("tamper_next"));
    ASSERT_TRUE(next.service->GetCodeObject(spec).ok());
    EXPECT_EQ(next.service->stats().remote.hits, 1u);
    EXPECT_EQ(next.service->stats().compiles, 0u);
  }
}

// A stored value over max_value_bytes is refused on its header (never read whole), and
// like any bad entry it is replaced.
TEST(RemoteCacheTest, OversizedValueIsRefusedOnItsHeader) {
  RedisServer redis;
  REQUIRE_REDIS(redis);
  const std::string key_file = WriteKeyFile(RandomBytes(32));
  ServiceOptions options;
  FakeCompiler compiler;
  options.compiler_for_target = compiler.AsLookup();
  options.remote.url = redis.url();
  options.remote.key_file = key_file;
  options.remote.max_value_bytes = 64 << 10;
  KernelService service(options);
  const KernelSpec spec = Spec(64);
  RedisClient client(redis.port());
  ASSERT_TRUE(client.Set(RedisKeyOf(service, spec), std::string(8 << 20, 'x')));
  const Clock::time_point start = Clock::now();
  ASSERT_TRUE(service.GetCodeObject(spec).ok());
  const double ms = MillisecondsSince(start);
  const ServiceStats stats = service.stats();
  EXPECT_EQ(stats.remote.bad_entries, 1u);
  EXPECT_EQ(stats.remote.circuit_opens, 0u);
  EXPECT_LT(stats.remote.bytes_read, 64u << 10);
  EXPECT_EQ(stats.compiles, 1u);
  EXPECT_EQ(stats.remote.writes, 1u);
  EXPECT_LT(client.Get(RedisKeyOf(service, spec))->size(), 64u << 10);
  std::printf("oversized value (8 MiB, bound 64 KiB): refused and replaced in %.1f ms\n", ms);
}

// Redis down when the node starts, then started; later killed mid-run and restarted.
// Each outage costs one failed try per circuit period, serving goes on, and the tier
// comes back by itself.
TEST(RemoteCacheTest, RedisDownAtStartKilledMidRunAndRestarted) {
  RedisServer redis;
  if (!redis.installed()) GTEST_SKIP() << "redis-server is not installed";
  const std::string key_file = WriteKeyFile(RandomBytes(32));
  const absl::Duration backoff = absl::Milliseconds(300);
  Node node(redis.url(), key_file, "", absl::Milliseconds(100), backoff);
  int head_dim = 32;
  auto request = [&]() {
    head_dim += 2;
    const Clock::time_point start = Clock::now();
    EXPECT_TRUE(node.service->GetCodeObject(Spec(head_dim)).ok());
    return MillisecondsSince(start);
  };

  double down_ms = request();  // refused: the circuit opens
  for (int i = 0; i < 5; ++i) down_ms += request();
  ServiceStats stats = node.service->stats();
  EXPECT_EQ(stats.compiles, 6u);
  EXPECT_EQ(stats.remote.circuit_opens, 1u);
  EXPECT_EQ(stats.remote.errors, 1u);
  EXPECT_GE(stats.remote.skipped, 10u);  // 5 Gets and 6 Puts answered at once
  EXPECT_LT(down_ms, 100.0 + 200.0);

  ASSERT_TRUE(redis.Start());
  std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff) * 2);
  request();
  stats = node.service->stats();
  EXPECT_EQ(stats.remote.writes, 1u) << "the tier did not come back";
  EXPECT_EQ(stats.remote.circuit_opens, 1u);

  redis.Kill();
  double killed_ms = 0;
  for (int i = 0; i < 5; ++i) killed_ms += request();
  stats = node.service->stats();
  EXPECT_EQ(stats.remote.circuit_opens, 2u);
  EXPECT_LT(killed_ms, 100.0 + 200.0);

  ASSERT_TRUE(redis.Start());
  std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff) * 2);
  request();
  stats = node.service->stats();
  EXPECT_EQ(stats.remote.writes, 2u) << "the tier did not come back after the restart";
  EXPECT_EQ(stats.compiles, 13u);  // 6 + 1 + 5 + 1 requests, each a compile
  std::printf("redis down at start: 6 requests in %.1f ms; killed mid-run: 5 requests in %.1f ms; "
              "circuit opens %llu, errors %llu, timeouts %llu, skipped %llu\n",
              down_ms, killed_ms, (unsigned long long)stats.remote.circuit_opens,
              (unsigned long long)stats.remote.errors, (unsigned long long)stats.remote.timeouts,
              (unsigned long long)stats.remote.skipped);
}

// A server that accepts and never answers, one that answers garbage, and one that claims
// a 2 GiB value and streams it: within one circuit period their total cost to a node is
// at most about one timeout, then one more per period.
TEST(RemoteCacheTest, SilentAndGarbageServersCostAtMostTheTimeoutPerPeriod) {
  const std::string key_file = WriteKeyFile(RandomBytes(32));
  const absl::Duration timeout = absl::Milliseconds(100);
  const absl::Duration backoff = absl::Milliseconds(800);
  constexpr double kSlackMs = 60;  // scheduling on a loaded CI machine
  const std::pair<const char*, FakeRedisServer::Mode> servers[] = {
      {"silent", FakeRedisServer::Mode::kSilent},
      {"garbage", FakeRedisServer::Mode::kGarbage},
      {"endless 2 GiB bulk", FakeRedisServer::Mode::kEndlessBulk},
  };
  for (const auto& [name, mode] : servers) {
    SCOPED_TRACE(name);
    FakeRedisServer server(mode);
    Node node(server.url(), key_file, "", timeout, backoff);
    int head_dim = 32;
    auto period = [&](int requests) {
      const Clock::time_point start = Clock::now();
      for (int i = 0; i < requests; ++i) {
        head_dim += 2;
        EXPECT_TRUE(node.service->GetCodeObject(Spec(head_dim)).ok());
      }
      return MillisecondsSince(start);
    };
    const double first_ms = period(8);
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff) + std::chrono::milliseconds(50));
    const double second_ms = period(8);
    const ServiceStats stats = node.service->stats();
    EXPECT_EQ(stats.compiles, 16u);
    EXPECT_EQ(stats.remote.hits, 0u);
    EXPECT_LE(first_ms, absl::ToDoubleMilliseconds(timeout) + kSlackMs);
    EXPECT_LE(second_ms, absl::ToDoubleMilliseconds(timeout) + kSlackMs);
    // One failed try per period: the rest are answered at once.
    EXPECT_EQ(stats.remote.circuit_opens, 2u);
    EXPECT_GE(stats.remote.skipped, 2u * (8 + 8 - 2));
    EXPECT_EQ(stats.remote.timeouts, mode == FakeRedisServer::Mode::kSilent ? 2u : 0u);
    if (mode == FakeRedisServer::Mode::kEndlessBulk) {
      // The GET's value is refused on its header (nothing read); a bulk reply to SET is
      // garbage and opens the circuit.
      EXPECT_EQ(stats.remote.bad_entries, 2u);
      EXPECT_EQ(stats.remote.bytes_read, 0u);
    }
    std::printf("%s server: 8 requests in %.1f ms, 8 more one period later in %.1f ms "
                "(timeout %.0f ms); circuit opens %llu, timeouts %llu, errors %llu, "
                "bad entries %llu, skipped %llu\n",
                name, first_ms, second_ms, absl::ToDoubleMilliseconds(timeout),
                (unsigned long long)stats.remote.circuit_opens,
                (unsigned long long)stats.remote.timeouts, (unsigned long long)stats.remote.errors,
                (unsigned long long)stats.remote.bad_entries,
                (unsigned long long)stats.remote.skipped);
  }
}

// tests/service_child processes, with the remote tier from the environment.
std::string ChildCommand(const std::string& redis_url, const std::string& key_file,
                         const std::string& args) {
  return absl::StrCat("ROPE_JIT_REMOTE_CACHE=", redis_url, " ROPE_JIT_REMOTE_CACHE_KEY_FILE=",
                      key_file, " ROPE_JIT_REMOTE_CACHE_TIMEOUT_MS=1000 ",
                      RunfilePath("tests/service_child"), " ", args);
}

int Field(const std::string& output, const std::string& name) {
  for (absl::string_view part : absl::StrSplit(output, absl::ByAnyChar(" \n"))) {
    int value = 0;
    if (absl::ConsumePrefix(&part, name + "=") && absl::SimpleAtoi(part, &value)) return value;
  }
  return -1;
}

TEST(RemoteCacheTest, SecondProcessGetsRemoteHitsWithoutCompiling) {
  RedisServer redis;
  REQUIRE_REDIS(redis);
  const std::string key_file = WriteKeyFile(RandomBytes(32));
  const std::string args = "--targets=sm_80,sm_90 --head_dims=64,128 --fake_compile_ms=0";
  ShellRun first = RunShell(
      ChildCommand(redis.url(), key_file, "--cache_dir=" + TempPath("p1") + " " + args));
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_EQ(Field(first.output, "remote_enabled"), 1) << first.output;
  EXPECT_EQ(Field(first.output, "compiles"), 4) << first.output;
  EXPECT_EQ(Field(first.output, "remote_writes"), 4) << first.output;
  const std::string second_disk = TempPath("p2");
  ShellRun second = RunShell(
      ChildCommand(redis.url(), key_file, "--cache_dir=" + second_disk + " " + args));
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(Field(second.output, "compiles"), 0) << second.output;
  EXPECT_EQ(Field(second.output, "remote_hits"), 4) << second.output;
  // The same code objects, and the second disk tier holds them now.
  for (absl::string_view line : absl::StrSplit(first.output, '\n')) {
    if (absl::StartsWith(line, "spec ")) {
      EXPECT_TRUE(absl::StrContains(second.output, line)) << line;
    }
  }
  ShellRun third = RunShell(
      ChildCommand(redis.url(), key_file, "--cache_dir=" + second_disk + " " + args));
  EXPECT_EQ(Field(third.output, "disk_hits"), 4) << third.output;
  EXPECT_EQ(Field(third.output, "remote_hits"), 0) << third.output;
}

// 16 processes, each with an empty disk tier of its own, 4 threads each, over one
// Redis, on 4 cold keys that take 200 ms to compile. Each key is compiled at most once
// per process; how often in total is printed (see README: cross-node single flight).
TEST(RemoteCacheTest, StampedeOfSixteenProcessesCompilesEachKeyAtMostOncePerProcess) {
  RedisServer redis;
  REQUIRE_REDIS(redis);
  const std::string key_file = WriteKeyFile(RandomBytes(32));
  // One wave of 16 processes that start together on empty disks; returns the total
  // compiles and remote hits.
  auto wave = [&](const std::string& name) -> std::pair<int, int> {
    const std::string go = TempPath("go");
    std::vector<FILE*> pipes;
    for (int i = 0; i < 16; ++i) {
      const std::string args = absl::StrCat(
          "--cache_dir=", TempPath(name), " --targets=sm_80,sm_90 --head_dims=64,128 ",
          "--threads=4 --fake_compile_ms=200 --wait_file=", go);
      pipes.push_back(StartShell(ChildCommand(redis.url(), key_file, args)));
      EXPECT_NE(pipes.back(), nullptr);
      if (pipes.back() == nullptr) pipes.pop_back();
    }
    std::ofstream(go) << "go";
    int compiles = 0, hits = 0;
    for (FILE* pipe : pipes) {
      ShellRun run = FinishShell(pipe);
      EXPECT_EQ(run.exit_code, 0) << run.output;
      const int child_compiles = Field(run.output, "compiles");
      EXPECT_GE(child_compiles, 0) << run.output;
      EXPECT_LE(child_compiles, 4) << run.output;  // each of the 4 keys at most once
      EXPECT_EQ(child_compiles + Field(run.output, "remote_hits"), 4) << run.output;
      compiles += child_compiles;
      hits += Field(run.output, "remote_hits");
    }
    return {compiles, hits};
  };
  const auto [compiles, hits] = wave("stampede");
  std::printf("stampede: 16 processes x 4 threads x 4 keys, started together: %d compiles in "
              "total (a fleet-wide single flight would make it 4), %d remote hits\n",
              compiles, hits);
  EXPECT_GE(compiles, 4);
  // The next wave (new pods, empty disks) finds everything in Redis.
  const auto [later_compiles, later_hits] = wave("later");
  std::printf("next wave of 16: %d compiles, %d remote hits\n", later_compiles, later_hits);
  EXPECT_EQ(later_compiles, 0);
  EXPECT_EQ(later_hits, 64);
}

}  // namespace
}  // namespace rope_jit
