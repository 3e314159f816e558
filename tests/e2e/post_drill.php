<?php
// tests/e2e/test_site.py drops this file into the web root for one test and
// removes it after: each request writes one row, then fails with a 500, as a
// save whose web host breaks after writing would.
require __DIR__ . '/wp-load.php';
global $wpdb;
$token = preg_replace('/[^A-Za-z0-9-]/', '', $_GET['t'] ?? 'none');
$wpdb->insert($wpdb->options, [
    'option_name' => 'wpha_e2e_' . $token . '_' . uniqid(),
    'option_value' => gethostname(),
    'autoload' => 'no',
]);
http_response_code(500);
echo "written once on " . gethostname() . "\n";
