<?php
// Drives the Roundcube plugin's serve client (integrations/roundcube/mail2fa/lib/mail2fa_client.php) from a test:
// argv = endpoint, token ('' = none), timeout seconds, path, JSON body. Prints one JSON line:
// {"status":…,"body":…,"ok":…,"code":…} or {"unavailable":"…"}.
require __DIR__ . '/../../integrations/roundcube/mail2fa/lib/mail2fa_client.php';

[, $endpoint, $token, $timeout, $path, $body] = $argv;
$client = new mail2fa_client($endpoint, $token === '' ? null : $token, (float) $timeout, 'roundcube');
try {
    $r = $path === '/healthz' ? $client->health() : $client->post($path, json_decode($body, true));
    echo json_encode(['status' => $r->status, 'body' => $r->body, 'ok' => $r->ok(), 'code' => $r->code()]), "\n";
} catch (mail2fa_unavailable $e) {
    echo json_encode(['unavailable' => $e->getMessage()]), "\n";
}
