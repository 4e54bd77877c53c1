# Writes a tiny MaxMind DB for the GeoIP tests: 198.51.100.0/24 -> FR, 2001:db8::/32 -> DE.
#   perl make_test_mmdb.pl OUT.mmdb   (Debian: libmaxmind-db-writer-perl)
use strict; use warnings;
use MaxMind::DB::Writer::Tree;
my %types = (country => 'map', iso_code => 'utf8_string', region => 'utf8_string');
my $tree = MaxMind::DB::Writer::Tree->new(
  ip_version => 6, record_size => 24, database_type => 'PPE-Test', languages => ['en'],
  description => { en => 'PPE test regions' }, alias_ipv6_to_ipv4 => 1,
  remove_reserved_networks => 0,  # the test networks are documentation ranges
  map_key_type_callback => sub { $types{ $_[0] } });
$tree->insert_network('198.51.100.0/24', { country => { iso_code => 'FR' } });
$tree->insert_network('2001:db8::/32', { country => { iso_code => 'DE' } });
open my $fh, '>:raw', $ARGV[0] or die; $tree->write_tree($fh); close $fh;
