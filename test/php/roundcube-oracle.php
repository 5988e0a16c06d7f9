<?php
/**
 * Test oracle: Debian's real Roundcube (1.6) answers questions about PHP serialize() values, rcube::encrypt /
 * decrypt, and users rows read and written with Roundcube's own rcube_user class. One process handles a whole
 * batch: JSON {"configDir": DIR, "cases": [...]} on stdin, a JSON array of answers on stdout. Binary values
 * travel as base64.
 *
 * Case ops:
 *   canonical {data}                      -> {unserializes, canonical, isArray}
 *   encrypt   {desKey, cipher, clear}     -> {blob}
 *   decrypt   {desKey, cipher, blob}      -> {clear|null}
 *   read      {dsn, prefix, userId, desKey, cipher, encrypt}
 *             -> {found, preferences (raw column, b64), prefs (serialize(get_prefs()), b64), plugin (the plugin's
 *                __get2FAconfig result as JSON, or null), pluginRaw ('array'|'string'|'absent')}
 *   save      {dsn, prefix, userId, desKey, cipher, encrypt, set: {key: b64 serialized value}, plugin: {...}|null}
 *             -> {ok}: get_prefs(), apply `set`, set the plugin key the way the plugin's __set2FAconfig does,
 *                rcube_user::save_prefs($prefs, true)
 */
define('INSTALL_PATH', '/var/lib/roundcube/');
$input = json_decode(stream_get_contents(STDIN), true);
define('RCMAIL_CONFIG_DIR', $input['configDir']);
require_once INSTALL_PATH . 'program/include/clisetup.php';

$rcube = rcube::get_instance();
$currentDsn = null;

function use_db($rcube, $dsn, $prefix)
{
    global $currentDsn;
    $key = $dsn . '|' . $prefix;
    if ($currentDsn !== $key) {
        if ($rcube->db) {
            $rcube->db->closeConnection();
        }
        $rcube->db = null;
        $rcube->config->set('db_dsnw', $dsn);
        $rcube->config->set('db_prefix', $prefix);
        $currentDsn = $key;
    }
}

function use_crypto($rcube, $c)
{
    $rcube->config->set('des_key', $c['desKey'] ?? 'rcmail-!24ByteDESkey*Str');
    $rcube->config->set('cipher_method', $c['cipher'] ?? 'DES-EDE3-CBC');
}

// The plugin's own reading (twofactor_gauthenticator.php __get2FAconfig).
function plugin_config($rcube, $prefs, $encrypt)
{
    $data = $prefs['twofactor_gauthenticator'] ?? array();
    if (!is_array($data) && $encrypt) {
        $cdata = json_decode($rcube->decrypt($data));
        if ($cdata == null) {
            $cdata = array();
        }
        $data = (array)$cdata;
    }
    return $data;
}

$out = [];
foreach ($input['cases'] as $case) {
    switch ($case['op']) {
        case 'canonical':
            $data = base64_decode($case['data']);
            $v = @unserialize($data, ['allowed_classes' => false]);
            $ok = $v !== false || $data === 'b:0;';
            $out[] = ['unserializes' => $ok, 'canonical' => $ok && serialize($v) === $data, 'isArray' => $ok && is_array($v)];
            break;
        case 'encrypt':
            use_crypto($rcube, $case);
            $out[] = ['blob' => $rcube->encrypt(base64_decode($case['clear']))];
            break;
        case 'decrypt':
            use_crypto($rcube, $case);
            $clear = $rcube->decrypt($case['blob']);
            $out[] = ['clear' => $clear === false ? null : base64_encode($clear)];
            break;
        case 'read':
            use_db($rcube, $case['dsn'], $case['prefix'] ?? '');
            use_crypto($rcube, $case);
            $user = new rcube_user($case['userId']);
            if (!$user->ID) {
                $out[] = ['found' => false];
                break;
            }
            $prefs = $user->get_prefs();
            $raw = array_key_exists('twofactor_gauthenticator', $prefs) ? (is_array($prefs['twofactor_gauthenticator']) ? 'array' : 'string') : 'absent';
            $plugin = plugin_config($rcube, $prefs, !empty($case['encrypt']));
            $out[] = [
                'found' => true,
                'preferences' => $user->data['preferences'] === null ? null : base64_encode($user->data['preferences']),
                'prefs' => base64_encode(serialize($prefs)),
                'pluginRaw' => $raw,
                'plugin' => $plugin,
            ];
            break;
        case 'save':
            use_db($rcube, $case['dsn'], $case['prefix'] ?? '');
            use_crypto($rcube, $case);
            $user = new rcube_user($case['userId']);
            $prefs = $user->get_prefs();
            foreach ($case['set'] ?? [] as $k => $v) {
                $prefs[$k] = unserialize(base64_decode($v));
            }
            if (array_key_exists('plugin', $case) && $case['plugin'] !== null) {
                // The plugin's own writing (twofactor_gauthenticator.php __set2FAconfig).
                $data = $case['plugin'];
                if (!empty($case['encrypt']) && $data) {
                    $edata = $rcube->encrypt(json_encode($data));
                    $data = $edata != null ? $edata : $data;
                }
                $prefs['twofactor_gauthenticator'] = $data;
            }
            $out[] = ['ok' => $user->save_prefs($prefs, true)];
            break;
        default:
            $out[] = ['error' => 'unknown op'];
    }
}
echo json_encode($out);
