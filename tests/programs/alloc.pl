# alloc.pl -- the perl workload of tests/programs: hashes, regular
# expressions and strings, with a deterministic output (counts and
# digests).
#
# What it exercises in an allocator: perl's scalars keep their string
# buffers in malloc'd blocks that grow by realloc (appends, joins,
# substitutions), hashes and arrays are malloc'd tables that double, and
# regular-expression matching allocates captures and temporary strings;
# the workload builds a word-count hash, rewrites strings with s///g,
# splits and joins, sorts by several keys, builds nested structures
# (hashes of arrays of hashes) and frees them, so blocks of every small
# size are allocated and freed in bulk, with a few large ones.
#
# Output is independent of the allocator and of perl's hash seed: hash
# keys are always sorted before they are printed or digested.
use strict;
use warnings;

my $seed = 20240601;

# A digest from perl-base alone (Digest::MD5 is not in perl-base): the
# length, a byte sum and a sum of 32-bit words, mod 2^32 (unpack's %32).
sub digest {
	my ($s) = @_;
	my $pad = $s . ("\0" x ((4 - length($s) % 4) % 4));
	return sprintf("%d-%08x-%08x", length $s, unpack('%32C*', $s),
	    unpack('%32N*', $pad));
}

sub rnd {
	my ($n) = @_;
	$seed = ($seed * 1103515245 + 12345) % 2147483648;
	return int($seed / 65536) % $n;
}

my @letters = ('a' .. 'z');
my @vocab;
for my $i (1 .. 20000) {
	my $len = 1 + rnd(10);
	push @vocab, join('', map { $letters[rnd(26)] } 1 .. $len);
}

# 1. Word counts over generated text, line by line.
my %count;
my $text_bytes = 0;
for my $line (1 .. 40000) {
	my $n = 3 + rnd(12);
	my $s = join(' ', map { $vocab[rnd(scalar @vocab)] } 1 .. $n);
	$s .= ' ' . rnd(100000) if $line % 3 == 0;
	$text_bytes += length $s;
	for my $w (split /\s+/, $s) {
		$count{$w}++ if $w =~ /^[a-z]+$/;
	}
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 4];
print "words ", scalar(keys %count), " bytes $text_bytes top @top\n";
print "counts ", digest(join(',', map { "$_=$count{$_}" } sort keys %count)), "\n";

# 2. Regex rewriting: captures, s///g, tr, growing a big string.
my $big = '';
my $matches = 0;
for my $i (1 .. 60000) {
	my $s = sprintf("id=%d name=%s score=%d.%02d", $i, $vocab[rnd(scalar @vocab)],
	    rnd(1000), rnd(100));
	if ($s =~ /^id=(\d+) name=(\w+) score=(\d+)\.(\d+)$/) {
		$matches++;
		my ($id, $name, $int, $frac) = ($1, $2, $3, $4);
		$name =~ s/([aeiou])/uc $1/ge;
		(my $t = $name) =~ tr/a-z/n-za-m/;
		$big .= "$id:$t:" . ($int * 100 + $frac) . ";";
	}
	$big = substr($big, length($big) / 2) if length($big) > 1_000_000;
}
print "regex matches $matches big ", length($big), " ", digest($big), "\n";

# 3. Nested structures: built, sorted, serialized, dropped.
my $digest = '';
for my $round (1 .. 4) {
	my %db;
	for my $i (1 .. 15000) {
		my $k = $vocab[rnd(scalar @vocab)];
		push @{ $db{$k} }, { id => $i, v => rnd(1000), tags => [ map { rnd(50) } 1 .. rnd(5) ] };
	}
	my @rows;
	for my $k (sort keys %db) {
		for my $r (sort { $a->{v} <=> $b->{v} || $a->{id} <=> $b->{id} } @{ $db{$k} }) {
			push @rows, join('/', $k, $r->{id}, $r->{v}, @{ $r->{tags} });
		}
	}
	$digest = digest($digest . join("\n", @rows));
}
print "nested $digest\n";
