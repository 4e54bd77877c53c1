#include "ppe-service/common/flags.h"

#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace ppe {
namespace {

absl::Status ParseLine(const FlagParser& flags, std::vector<const char*> args) {
  args.insert(args.begin(), "tool");
  return flags.Parse(static_cast<int>(args.size()), args.data());
}

TEST_CASE("flags: values, switches, positionals and the --name=value form") {
  std::string server;
  int timeout = 0;
  double level = 0;
  bool json = false;
  std::vector<std::string> positional;
  FlagParser flags;
  flags.String("server", &server);
  flags.Int("timeout-ms", &timeout);
  flags.Double("level", &level);
  flags.Switch("json", &json);
  flags.Positionals([&](absl::string_view a) {
    positional.emplace_back(a);
    return absl::OkStatus();
  });
  REQUIRE(ParseLine(flags, {"status", "--server", "h:1", "--timeout-ms=250", "--json", "-",
                            "--level", "-2.5"})
              .ok());
  CHECK(server == "h:1");
  CHECK(timeout == 250);
  CHECK(level == -2.5);
  CHECK(json);
  CHECK(positional == std::vector<std::string>{"status", "-"});
}

TEST_CASE("flags: each mistake is refused naming the flag") {
  int n = 0;
  bool on = false;
  FlagParser flags;
  flags.Int("n", &n);
  flags.Switch("on", &on);
  auto error = [&](std::vector<const char*> args) {
    return std::string(ParseLine(flags, args).message());
  };
  CHECK(error({"--n"}) == "--n needs a value");
  CHECK(error({"--n", "x"}) == "--n: not a whole number: x");
  CHECK(error({"--on=1"}) == "--on takes no value");
  CHECK(error({"--other", "1"}) == "unknown option --other");
  CHECK(error({"word"}) == "unexpected argument 'word'");
}

TEST_CASE("flags: undeclared flags go to Others when asked, custom setters can refuse") {
  std::map<std::string, std::string> others;
  FlagParser flags;
  flags.Others(&others);
  flags.Custom("even", [](absl::string_view v) {
    return v.size() % 2 == 0 ? absl::OkStatus() : absl::InvalidArgumentError("odd");
  });
  REQUIRE(ParseLine(flags, {"--cpt", "abc", "--region=eu", "--even", "xy"}).ok());
  CHECK(others == std::map<std::string, std::string>{{"cpt", "abc"}, {"region", "eu"}});
  CHECK(ParseLine(flags, {"--even", "xyz"}).message() == "odd");
}

}  // namespace
}  // namespace ppe
