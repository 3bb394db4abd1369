# A minimal stand-in for Homebrew's Formula DSL, enough to run the generated formula's
# `install` method and `test do` block on Linux without Homebrew.
#
#   ruby brew_stub.rb FORMULA.rb install BUILDPATH PREFIX
#       runs `install` in BUILDPATH (cargo is not run: `system` is recorded), installing into
#       the keg PREFIX, then prints every file of the keg and of HOMEBREW_PREFIX/etc (as
#       etc/...) and the recorded commands
#   ruby brew_stub.rb FORMULA.rb test PREFIX HTTPD_PREFIX TESTPATH
#       runs the `test do` block with Formula["httpd"] at HTTPD_PREFIX (its `system` calls run)
#
# HOMEBREW_PREFIX comes from the environment.
require "pathname"
require "fileutils"
require "socket"

module OS
  def self.mac? = false
  def self.linux? = true
end

HOMEBREW_PREFIX = Pathname(ENV.fetch("HOMEBREW_PREFIX", "/nonexistent-homebrew-prefix"))

# Homebrew's etc: a file that is already there is kept, the new one goes beside it as .default.
module InstallRenamed
  def install(*sources)
    sources.flatten.each do |src|
      dst = self / File.basename(src.to_s)
      dst = Pathname("#{dst}.default") if dst.exist?
      mkpath
      FileUtils.cp(src.to_s, dst.to_s)
    end
  end

  def /(other) = super.extend(InstallRenamed)
end

def ENV.append(key, value)
  self[key] = [self[key], value].compact.join(" ")
end

class Pathname
  def install(*sources)
    sources.each do |src|
      case src
      when Array then src.each { |s| install(s) }
      when Hash
        src.each do |from, to|
          mkpath
          FileUtils.cp(from.to_s, (self / to.to_s).to_s)
        end
      else
        mkpath
        FileUtils.cp(src.to_s, (self / File.basename(src.to_s)).to_s)
      end
    end
  end
end

class Dep
  def initialize(prefix) = @prefix = Pathname(prefix)
  def opt_prefix = @prefix
  def opt_bin = @prefix / "bin"
end

class Formula
  @deps = {}
  class << self
    attr_accessor :test_block, :name
    def deps = @deps ||= {}
    %i[desc homepage url sha256 license].each do |k|
      define_method(k) { |v = nil| instance_variable_set("@#{k}", v) if v; instance_variable_get("@#{k}") }
    end
    def depends_on(spec) = (deps[spec] = true)
    def uses_from_macos(spec) = (deps[spec] = :macos)
    def test(&block) = (self.test_block = block)
    def inherited(sub)
      super
      $formula_class = sub
    end
  end

  @@deps = {}
  def self.[](name) = @@deps.fetch(name)
  def self.register(name, prefix) = (@@deps[name] = Dep.new(prefix))

  attr_reader :prefix, :systems, :testpath
  def initialize(prefix, name, testpath = nil)
    @prefix = Pathname(prefix)
    @name = name
    @systems = []
    @testpath = Pathname(testpath) if testpath
  end
  def lib = prefix / "lib"
  def bin = prefix / "bin"
  def share = prefix / "share"
  def pkgshare = prefix / "share" / @name
  def libexec = prefix / "libexec"
  def etc = (HOMEBREW_PREFIX / "etc").extend(InstallRenamed)
  def buildpath = Pathname(Dir.pwd)
  def opt_lib = lib
  def opt_pkgshare = pkgshare
  def shared_library(name) = "#{name}.so"
  attr_accessor :testing
  def system(*args)
    @systems << args
    return true unless testing
    Kernel.system(*args.map(&:to_s)) || raise("system: #{args.join(" ")} failed (#{$?.exitstatus})")
  end
  def free_port
    s = TCPServer.new("127.0.0.1", 0)
    port = s.addr[1]
    s.close
    port
  end
  def shell_output(cmd)
    out = `#{cmd}`
    raise "shell_output: `#{cmd}` failed (#{$?.exitstatus}):\n#{out}" unless $?.success?
    out
  end
  def assert_path_exists(p) = (raise "assert_path_exists: #{p} does not exist" unless File.exist?(p.to_s))
  def assert_match(pat, str) = (raise "assert_match: #{pat.inspect} not in:\n#{str}" unless str.include?(pat))
end

formula_file, mode, *rest = ARGV
load formula_file
name = File.basename(formula_file, ".rb")
case mode
when "install"
  buildpath, prefix = rest
  Formula.register("httpd", "/nonexistent-httpd-prefix")
  f = $formula_class.new(prefix, name)
  Dir.chdir(buildpath) { f.install }
  Dir.glob("**/*", base: prefix).sort.each do |p|
    puts "FILE #{p}" if File.file?(File.join(prefix, p))
  end
  Dir.glob("**/*", base: HOMEBREW_PREFIX / "etc").sort.each do |p|
    puts "FILE etc/#{p}" if File.file?(HOMEBREW_PREFIX / "etc" / p)
  end
  f.systems.each { |s| puts "SYSTEM #{s.join(" ")}" }
  puts "ENV APXS=#{ENV["APXS"]}"
  $formula_class.deps.each { |k, v| puts "DEP #{k.inspect} #{v}" }
  $formula_class.instance_method(:caveats) && puts("CAVEATS\n" + f.caveats)
when "test"
  prefix, httpd_prefix, testpath = rest
  Formula.register("httpd", httpd_prefix)
  f = $formula_class.new(prefix, name, testpath)
  f.testing = true
  f.instance_eval(&$formula_class.test_block)
  puts "TEST PASSED"
else
  abort "usage: brew_stub.rb FORMULA install|test ..."
end
