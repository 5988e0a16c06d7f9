<?php

/**
 * mail2fa — two-factor authentication for Roundcube, on mail2fa's store.
 *
 * A thin front end: every rule (codes, replay, lockout, rate limits, audit) lives in mail2fa and is reached
 * through `mail2fa serve` (docs/serve.md). This plugin only asks and shows the answer:
 *
 *  - Sign-in: after IMAP accepted the password, when mail2fa says a code is required, the session is held
 *    half-open: every request except the code step and sign-out is refused (AJAX) or shown the code step.
 *  - Signed out everywhere: every request compares the session's start with mail2fa's sessions-revoked time
 *    (re-checked at most every 30 s) and ends older sessions.
 *  - Settings › Two-Factor Authentication: status, enable (app or SMS), disable, new recovery codes.
 *  - Fail closed: when serve cannot be asked, nobody who may need a code gets in, unless the site sets
 *    mail2fa_fail_open explicitly.
 *
 * @license MIT
 */
require_once __DIR__ . '/lib/mail2fa_client.php';

class mail2fa extends rcube_plugin
{
    /** The sign-in code step (and what a half-open session may still do). */
    private const CODE_ACTIONS = ['plugin.mail2fa-code', 'plugin.mail2fa-verify', 'plugin.mail2fa-send'];
    /** A half-open session that is not completed within this many seconds is ended. */
    private const PENDING_TTL = 600;
    private const MAX_CHECK_INTERVAL = 30;

    /** @var rcmail */
    private $rc;
    /** @var mail2fa_client|null */
    private $client;
    /** What the current page shows: [view name, data]. */
    private $view = ['status', []];
    /** Inline message for the current page: [type, text]. */
    private $notice = null;

    public function init()
    {
        $this->rc = rcmail::get_instance();
        $this->load_config();
        $this->add_texts('localization/');

        $this->add_hook('startup', [$this, 'startup']);
        $this->add_hook('login_after', [$this, 'login_after']);
        $this->add_hook('settings_actions', [$this, 'settings_actions']);

        $this->register_action('plugin.mail2fa-code', [$this, 'code_page']);
        $this->register_action('plugin.mail2fa-verify', [$this, 'code_verify']);
        $this->register_action('plugin.mail2fa-send', [$this, 'code_send']);
        $this->register_action('plugin.mail2fa', [$this, 'settings_page']);
        $this->register_action('plugin.mail2fa-save', [$this, 'settings_save']);
    }

    // ------------------------------------------------------------------------------------------------------------
    // Every request: the half-open gate and the sessions-revoked check

    public function startup($args)
    {
        $task = (string) $args['task'];
        $action = (string) $args['action'];

        if (!empty($_SESSION['mail2fa_pending'])) {
            // Allowed while half-open: the code step, signing out, and a fresh sign-in (which replaces this session).
            if ($task === 'logout' || ($task === 'login' && $action === 'login') || in_array($action, self::CODE_ACTIONS, true)) {
                if (in_array($action, self::CODE_ACTIONS, true) && $this->pending_expired()) {
                    return $this->end_session('codetimeout');
                }
                return $args;
            }
            if ($this->pending_expired()) {
                return $this->end_session('codetimeout');
            }
            if ($this->rc->output->ajax_call || !empty($_REQUEST['_framed']) || !empty($_REQUEST['_remote'])) {
                // No mail request is answered before the code: refuse, and send the browser to the code step.
                $this->refuse_ajax();
            }
            return ['task' => 'login', 'action' => 'plugin.mail2fa-code'] + $args;
        }

        if (!empty($_SESSION['user_id']) && $task !== 'login' && $task !== 'logout') {
            return $this->check_revoked($args);
        }

        // The sign-in page after end_session(): say why.
        $reason = rcube_utils::get_input_string('_mail2fa', rcube_utils::INPUT_GET);
        if ($task === 'login' && empty($_SESSION['user_id']) && in_array($reason, ['signedout', 'codetimeout'], true)) {
            $this->rc->output->show_message("mail2fa.$reason", 'warning', null, true, 20);
        }

        return $args;
    }

    private function pending_expired(): bool
    {
        $since = (int) ($_SESSION['mail2fa_pending']['since'] ?? 0);
        return time() - $since > self::PENDING_TTL;
    }

    /**
     * Ends the session before any action runs. A page request is sent to the sign-in page with our reason; AJAX
     * and framed requests get Roundcube's own "session ended" answer (the client then reloads the sign-in page).
     */
    private function end_session(string $reason)
    {
        $this->rc->kill_session();
        if (!$this->rc->output->ajax_call && empty($_REQUEST['_framed']) && empty($_REQUEST['_remote'])) {
            $this->rc->output->redirect(['_task' => 'login', '_mail2fa' => $reason], 0, true);
        }
        return ['task' => 'login', 'action' => ''];
    }

    private function refuse_ajax()
    {
        header('HTTP/1.1 403 Forbidden');
        $url = $this->rc->url(['_task' => 'login', '_action' => 'plugin.mail2fa-code'], true);
        if ($this->rc->output instanceof rcmail_output_json) {
            $this->rc->output->command('session_error', $url);
            $this->rc->output->send();
        }
        // A framed/remote page: the top window goes to the code step.
        $this->rc->output->command('session_error', $url);
        $this->rc->output->send('iframe');
        exit;
    }

    private function check_revoked($args)
    {
        $interval = max(0, min(self::MAX_CHECK_INTERVAL, (int) $this->rc->config->get('mail2fa_revocation_check_interval', self::MAX_CHECK_INTERVAL)));
        $now = microtime(true);
        if ($interval > 0 && $now - (float) ($_SESSION['mail2fa_checked_at'] ?? 0) < $interval) {
            return $args;
        }
        try {
            $r = $this->client()->post('/v1/sessions-revoked-at', ['email' => $this->email()]);
        } catch (mail2fa_unavailable $e) {
            $this->log_unavailable($e);
            if ($this->fail_open()) {
                return $args;
            }
            $this->unavailable_page();
        }
        if ($r->ok()) {
            $revoked = $r->get('sessionsRevokedAtMs');
            if (is_int($revoked) && $revoked > $this->session_started_ms()) {
                rcube::write_log('mail2fa', sprintf('session of %s ended: 2FA settings changed at %s', $this->email(), (string) $r->get('sessionsRevokedAt')));
                return $this->end_session('signedout');
            }
        }
        if (!$r->ok()) {
            if ($r->status === 404 || $r->status === 400) {
                if (!$this->unknown_allowed($this->email(), $r)) {
                    return $this->end_session('signedout');
                }
            } else {
                // A refused token or another unexpected answer: a misconfiguration, never a reason to let in.
                rcube::write_log('mail2fa', "mail2fa serve answered {$r->status} ({$r->code()}) to sessions-revoked-at");
                $this->unavailable_page();
            }
        }
        $_SESSION['mail2fa_checked_at'] = $now;
        return $args;
    }

    /** When this session was fully signed in, in epoch milliseconds. */
    private function session_started_ms(): int
    {
        if (isset($_SESSION['mail2fa_started_ms'])) {
            return (int) $_SESSION['mail2fa_started_ms'];
        }
        // A session from before the plugin was installed: its sign-in time.
        return (int) ($_SESSION['login_time'] ?? 0) * 1000;
    }

    // ------------------------------------------------------------------------------------------------------------
    // Sign-in: the code step

    public function login_after($args)
    {
        $email = $this->email();
        try {
            $r = $this->client()->post('/v1/requires-code', ['email' => $email]);
        } catch (mail2fa_unavailable $e) {
            $this->log_unavailable($e);
            if (!$this->fail_open()) {
                $this->rc->kill_session();
                $this->unavailable_page();
            }
            rcube::write_log('mail2fa', "FAIL OPEN: $email signed in without the 2FA check (mail2fa serve unreachable)");
            $this->mark_signed_in();
            return $args;
        }
        if ($r->ok() && $r->get('requiresCode') === true) {
            $_SESSION['mail2fa_pending'] = ['since' => time(), 'redirect' => $this->safe_redirect($args)];
            return ['_task' => 'login', '_action' => 'plugin.mail2fa-code'];
        }
        if ($r->ok() && $r->get('requiresCode') === false) {
            $this->mark_signed_in();
            return $args;
        }
        if (($r->status === 404 || $r->status === 400) && $this->unknown_allowed($email, $r)) {
            $this->mark_signed_in();
            return $args;
        }
        // Anything else than a clear "no code needed": nobody is let in.
        $this->rc->kill_session();
        $this->unavailable_page($r->status === 404 || $r->status === 400 ? 'unknownaccountlogin' : 'unavailable');
    }

    /**
     * An address mail2fa does not know (404) or cannot read as an address (400). By default such a sign-in is
     * refused: IMAP may accept spellings mail2fa's exact matching does not (case, a login without the domain),
     * and letting them in would skip 2FA. Sites whose webmail also serves mailboxes outside mail2fa's table set
     * mail2fa_unknown_accounts = 'allow'.
     */
    private function unknown_allowed(string $email, mail2fa_response $r): bool
    {
        $allow = $this->rc->config->get('mail2fa_unknown_accounts', 'deny') === 'allow';
        rcube::write_log('mail2fa', sprintf('%s is %s to mail2fa (%s): %s', $email, $r->status === 404 ? 'unknown' : 'not an address', $r->code(), $allow ? 'allowed (mail2fa_unknown_accounts = allow)' : 'refused'));
        return $allow;
    }

    private function mark_signed_in(): void
    {
        $_SESSION['mail2fa_started_ms'] = (int) floor(microtime(true) * 1000);
        $_SESSION['mail2fa_checked_at'] = microtime(true);
    }

    /** Keeps only Roundcube's own redirect parameters (the _url round trip of the login form). */
    private function safe_redirect(array $args): array
    {
        $out = [];
        foreach ($args as $k => $v) {
            if (is_string($k) && preg_match('/^_[a-z]+$/', $k) && is_scalar($v)) {
                $out[$k] = (string) $v;
            }
        }
        if (empty($out['_task']) || $out['_task'] === 'login') {
            $out['_task'] = 'mail';
        }
        return $out;
    }

    public function code_page()
    {
        if (empty($_SESSION['mail2fa_pending'])) {
            $this->rc->output->redirect(['_task' => 'mail'], 0, true);
        }
        $this->render_code_page();
    }

    public function code_verify()
    {
        if (empty($_SESSION['mail2fa_pending'])) {
            $this->rc->output->redirect(['_task' => 'mail'], 0, true);
        }
        $code = rcube_utils::get_input_string('_code', rcube_utils::INPUT_POST);
        $email = $this->email();
        try {
            $r = $this->client()->post('/v1/verify', ['email' => $email, 'code' => $code] + $this->client_info());
        } catch (mail2fa_unavailable $e) {
            $this->log_unavailable($e);
            $this->notice = ['error', $this->gettext('unavailable')];
            $this->render_code_page(503);
        }
        if ($r->ok() && $r->get('outcome') === 'accepted') {
            $redirect = $_SESSION['mail2fa_pending']['redirect'] ?? ['_task' => 'mail'];
            unset($_SESSION['mail2fa_pending']);
            $this->mark_signed_in();
            $this->rc->session->regenerate_id(false);
            $this->rc->session->set_auth_cookie();
            if ($r->get('kind') === 'temporary') {
                // Customer service's one-time code: the user is here to set up 2FA on a new phone.
                $redirect = ['_task' => 'settings', '_action' => 'plugin.mail2fa'];
            }
            $this->rc->output->redirect($redirect, 0, true);
        }
        $this->notice = ['error', $this->code_failure($r)];
        $this->render_code_page($r->status === 429 ? 429 : 200);
    }

    public function code_send()
    {
        if (empty($_SESSION['mail2fa_pending'])) {
            $this->rc->output->redirect(['_task' => 'mail'], 0, true);
        }
        try {
            $r = $this->client()->post('/v1/send-code', ['email' => $this->email()] + $this->client_info());
            if ($r->ok()) {
                $this->notice = ['confirmation', $this->gettext(['name' => 'codesent', 'vars' => ['phone' => (string) $r->get('phoneMasked')]])];
            } else {
                $this->notice = ['error', $this->code_failure($r)];
            }
        } catch (mail2fa_unavailable $e) {
            $this->log_unavailable($e);
            $this->notice = ['error', $this->gettext('smsunavailable')];
        }
        $this->render_code_page();
    }

    private function render_code_page(int $http_status = 200)
    {
        $status = null;
        if ($this->notice === null || $this->notice[0] !== 'error' || $http_status !== 503) {
            try {
                $s = $this->client()->post('/v1/status', ['email' => $this->email()]);
                $status = $s->ok() ? $s->body : null;
            } catch (mail2fa_unavailable $e) {
                $this->log_unavailable($e);
                $this->notice = ['error', $this->gettext('unavailable')];
                $http_status = 503;
            }
        }
        if ($http_status !== 200) {
            http_response_code($http_status);
        }
        $this->register_handler('plugin.mail2fa_signin', function () use ($status) {
            return $this->code_form($status);
        });
        $this->rc->output->set_pagetitle($this->gettext('codetitle'));
        $this->include_stylesheet($this->local_skin_path() . '/mail2fa.css');
        $this->rc->output->send('mail2fa.code');
    }

    private function code_form(?array $status): string
    {
        $method = $status['method'] ?? null;
        $temporary = isset($status['temporaryCode']['state']) && $status['temporaryCode']['state'] === 'pending';
        $intro = $status === null ? 'codeintro' : ($method === 'sms' ? 'codeintrosms' : ($method === 'totp' ? 'codeintroapp' : 'codeintrotemporary'));

        $out = html::tag('h1', ['class' => 'mail2fa-title'], rcube::Q($this->gettext('codetitle')));
        $out .= $this->notice_html();
        $out .= html::p(['class' => 'mail2fa-intro'], rcube::Q($this->gettext($intro)));

        $input = new html_inputfield([
            'name' => '_code', 'id' => 'mail2fa-code', 'class' => 'form-control', 'autocomplete' => 'one-time-code',
            'autocapitalize' => 'off', 'spellcheck' => 'false', 'required' => 'required', 'size' => 20, 'maxlength' => 64,
            'autofocus' => 'autofocus',
        ]);
        $table = html::div(['class' => 'mail2fa-field'],
            html::label(['for' => 'mail2fa-code'], rcube::Q($this->gettext('code'))) . $input->show()
        );
        $hint = html::p(['class' => 'mail2fa-hint'], rcube::Q($this->gettext($status !== null && ($temporary || $method === null) ? 'codehinttemporary' : 'codehint')));
        $submit = html::tag('button', ['type' => 'submit', 'class' => 'button mainaction btn btn-primary', 'id' => 'mail2fa-submit'], rcube::Q($this->gettext('verify')));
        $out .= $this->rc->output->form_tag(['method' => 'post', 'id' => 'mail2fa-code-form', 'action' => './?_task=login&_action=plugin.mail2fa-verify'],
            $table . $hint . html::p(['class' => 'formbuttons'], $submit));

        if ($method === 'sms') {
            $send = html::tag('button', ['type' => 'submit', 'class' => 'button btn btn-secondary', 'id' => 'mail2fa-send'], rcube::Q($this->gettext('sendcode')));
            $out .= $this->rc->output->form_tag(['method' => 'post', 'id' => 'mail2fa-send-form', 'action' => './?_task=login&_action=plugin.mail2fa-send'], $send);
        }

        $out .= $this->lost_phone_html();
        $logout = html::a(['href' => $this->rc->url(['_task' => 'logout', '_token' => $this->rc->get_request_token()]), 'id' => 'mail2fa-cancel'], rcube::Q($this->gettext('cancelsignin')));
        $out .= html::p(['class' => 'mail2fa-cancel'], $logout);

        return html::div(['id' => 'login-form', 'class' => 'mail2fa-signin propform'], $out);
    }

    /** The words for a code that was not accepted (verify, send-code), from mail2fa's outcome. */
    private function code_failure(mail2fa_response $r): string
    {
        $code = $r->code();
        if ($code === 'locked') {
            return $this->gettext(['name' => 'locked', 'vars' => ['time' => $this->format_time($r->get('lockedUntil'))]]);
        }
        if ($code === 'rate_limited') {
            return $this->gettext(['name' => 'ratelimited', 'vars' => ['time' => $this->format_time($r->get('retryAfter'))]]);
        }
        if ($code === 'rejected' || $code === 'wrong_code') {
            if ($r->get('lockedUntil')) {
                return $this->gettext(['name' => 'locked', 'vars' => ['time' => $this->format_time($r->get('lockedUntil'))]]);
            }
            $left = 5 - (int) $r->get('failedAttempts', 0);
            return $this->gettext('wrongcode') . ($r->get('failedAttempts') !== null && $left > 0 ? ' ' . $this->gettext(['name' => 'attemptsleft', 'vars' => ['n' => (string) $left]]) : '');
        }
        if ($code === 'malformed' || $code === 'bad_request') {
            return $this->gettext('malformedcode');
        }
        if ($code === 'wrong_password') {
            return $this->gettext('wrongpassword');
        }
        if ($code === 'not_sms' || $code === 'not_enabled') {
            return $this->gettext('notsms');
        }
        return $this->gettext('failed');
    }

    // ------------------------------------------------------------------------------------------------------------
    // Settings › Two-Factor Authentication

    public function settings_actions($args)
    {
        $entry = ['action' => 'plugin.mail2fa', 'class' => 'mail2fa', 'label' => 'title', 'title' => 'title', 'domain' => 'mail2fa'];
        // Where users are told to look: next to Password (when the password plugin is there), else at the end.
        $actions = [];
        $placed = false;
        foreach ($args['actions'] as $a) {
            $actions[] = $a;
            if (!$placed && ($a['action'] ?? '') === 'plugin.password') {
                $actions[] = $entry;
                $placed = true;
            }
        }
        if (!$placed) {
            $actions[] = $entry;
        }
        $args['actions'] = $actions;
        $this->include_stylesheet($this->local_skin_path() . '/mail2fa.css');
        return $args;
    }

    public function settings_page()
    {
        $this->view = ['status', []];
        $this->send_settings();
    }

    public function settings_save()
    {
        $step = rcube_utils::get_input_string('_step', rcube_utils::INPUT_POST);
        $email = $this->email();
        $password = rcube_utils::get_input_string('_password', rcube_utils::INPUT_POST, true, $this->rc->config->get('password_charset', 'UTF-8'));
        $code = rcube_utils::get_input_string('_code', rcube_utils::INPUT_POST);
        $this->view = ['status', []];

        try {
            switch ($step) {
            case 'enrol-start':
                $method = rcube_utils::get_input_string('_method', rcube_utils::INPUT_POST) === 'sms' ? 'sms' : 'app';
                $body = ['email' => $email, 'password' => $password, 'method' => $method] + $this->client_info();
                if ($method === 'sms') {
                    $body['phone'] = rcube_utils::get_input_string('_phone', rcube_utils::INPUT_POST);
                }
                $r = $this->client()->post('/v1/enrol/start', $body);
                if ($r->ok()) {
                    $_SESSION['mail2fa_enrolment'] = ['id' => (string) $r->get('enrolmentId'), 'method' => $r->get('method')];
                    $this->view = [$r->get('method') === 'sms' ? 'enrol-sms' : 'enrol-app', $r->body];
                } else {
                    $this->fail($r, $method === 'sms' ? 'phone' : null);
                }
                break;

            case 'enrol-confirm':
                $pending = $_SESSION['mail2fa_enrolment'] ?? null;
                if (!$pending) {
                    $this->notice = ['error', $this->gettext('enrolmentgone')];
                    break;
                }
                $r = $this->client()->post('/v1/enrol/confirm', ['email' => $email, 'enrolmentId' => $pending['id'], 'code' => $code] + $this->client_info());
                if ($r->ok()) {
                    unset($_SESSION['mail2fa_enrolment']);
                    $this->view = ['enabled', $r->body];
                    // Sessions were revoked: this one too, at its next request (not after the check's cache).
                    $_SESSION['mail2fa_checked_at'] = 0;
                } elseif ($r->code() === 'wrong_code') {
                    $this->notice = ['error', $this->gettext('wrongcode')];
                    $this->view = [$pending['method'] === 'sms' ? 'enrol-sms' : 'enrol-app', ['again' => true]];
                } else {
                    unset($_SESSION['mail2fa_enrolment']);
                    $this->fail($r);
                }
                break;

            case 'disable':
                $this->password_and_code_step('/v1/disable', 'disabled', $email, $password, $code);
                $_SESSION['mail2fa_checked_at'] = 0;
                break;

            case 'disable-send':
            case 'regenerate-send':
                $path = $step === 'disable-send' ? '/v1/disable/send-code' : '/v1/recovery-codes/send-code';
                $r = $this->client()->post($path, ['email' => $email, 'password' => $password] + $this->client_info());
                if ($r->ok()) {
                    $this->notice = ['confirmation', $this->gettext(['name' => 'codesent', 'vars' => ['phone' => (string) $r->get('phoneMasked')]]) . ' ' . $this->gettext('typepasswordagain')];
                } else {
                    $this->fail($r);
                }
                break;

            case 'regenerate':
                $this->password_and_code_step('/v1/recovery-codes/regenerate', 'regenerated', $email, $password, $code);
                break;
            }
        } catch (mail2fa_unavailable $e) {
            $this->log_unavailable($e);
            $this->notice = ['error', $this->gettext('unavailable')];
        }
        $this->send_settings();
    }

    /** Disable and new recovery codes: password + a current code; the answer's page, or why not. */
    private function password_and_code_step(string $path, string $view, string $email, string $password, string $code): void
    {
        $r = $this->client()->post($path, ['email' => $email, 'password' => $password, 'code' => $code] + $this->client_info());
        if ($r->ok()) {
            $this->view = [$view, $r->body];
        } else {
            $this->fail($r);
        }
    }

    /** A negative answer of a settings step, in the user's words. */
    private function fail(mail2fa_response $r, ?string $field = null): void
    {
        $code = $r->code();
        $known = [
            'already_enabled' => 'alreadyenabled', 'not_enabled' => 'notenabled', 'mailbox_inactive' => 'inactive', 'inactive' => 'inactive',
            'enrolment_cancelled' => 'enrolmentcancelled', 'enrolment_expired' => 'enrolmentgone',
            'no_pending_enrolment' => 'enrolmentgone', 'enrolment_superseded' => 'enrolmentgone',
            'current_code_required' => 'currentcoderequired', 'temporary_code_expired' => 'temporaryexpired',
        ];
        if (isset($known[$code])) {
            $text = $this->gettext($known[$code]);
        } elseif ($code === 'bad_request' && ($r->body['error']['field'] ?? null) === 'phone') {
            // mail2fa's own words on why the number is not valid (English), after ours.
            $text = $this->gettext('badphone') . ' (' . (string) ($r->body['error']['message'] ?? '') . ')';
        } elseif ($code === 'bad_request' && ($r->body['error']['field'] ?? null) === 'password') {
            $text = $this->gettext('wrongpassword');
        } else {
            $text = $this->code_failure($r);
        }
        $this->notice = ['error', $text];
    }

    private function send_settings()
    {
        $this->register_handler('plugin.body', [$this, 'settings_body']);
        $this->rc->output->set_pagetitle($this->gettext('title'));
        $this->include_stylesheet($this->local_skin_path() . '/mail2fa.css');
        $this->rc->output->send('plugin');
    }

    public function settings_body()
    {
        [$view, $data] = $this->view;
        $out = $this->notice_html();

        if ($view === 'enrol-app') {
            $out .= $this->enrol_app_html($data);
        } elseif ($view === 'enrol-sms') {
            $out .= $this->enrol_sms_html($data);
        } elseif ($view === 'enabled' || $view === 'regenerated') {
            $out .= $this->recovery_codes_html($data, $view === 'enabled');
        } elseif ($view === 'disabled') {
            $out .= html::div(['class' => 'mail2fa-done', 'id' => 'mail2fa-disabled'],
                html::p(null, rcube::Q($this->gettext('disableddone'))) . $this->signout_html());
        } else {
            $out .= $this->status_html();
        }

        return html::div(['class' => 'formcontent mail2fa-settings', 'id' => 'mail2fa-settings'],
            html::tag('h2', ['class' => 'mail2fa-title'], rcube::Q($this->gettext('title'))) . $out);
    }

    private function status_html(): string
    {
        try {
            $r = $this->client()->post('/v1/status', ['email' => $this->email()]);
        } catch (mail2fa_unavailable $e) {
            $this->log_unavailable($e);
            return html::div(['class' => 'mail2fa-message error'], rcube::Q($this->gettext('unavailable')));
        }
        if (!$r->ok()) {
            return html::div(['class' => 'mail2fa-message error'], rcube::Q($this->gettext($r->status === 404 ? 'unknownaccount' : 'failed')));
        }
        $s = $r->body;
        $method = $s['method'] ?? null;
        $on = !empty($s['enabled']) && $method !== null;
        $out = '';

        $rows = [];
        $rows[] = [$this->gettext('status'), $on ? $this->gettext('statuson') : $this->gettext('statusoff')];
        if ($on) {
            $rows[] = [$this->gettext('method'), $method === 'sms'
                ? $this->gettext(['name' => 'methodsmsto', 'vars' => ['phone' => (string) ($s['phone'] ?? '')]])
                : $this->gettext('methodapp')];
            $rows[] = [$this->gettext('recoverycodesleft'), (string) (int) ($s['recoveryCodesLeft'] ?? 0)];
        }
        if (!empty($s['lockedUntil'])) {
            $rows[] = [$this->gettext('lockeduntil'), $this->format_time($s['lockedUntil'])];
        }
        $table = new html_table(['cols' => 2, 'class' => 'propform mail2fa-status', 'id' => 'mail2fa-status']);
        foreach ($rows as [$k, $v]) {
            $table->add('title', rcube::Q($k));
            $table->add(null, rcube::Q($v));
        }
        $out .= $table->show();

        if (!$on) {
            if (!empty($s['enabled']) && $method === null) {
                $out .= html::p(['class' => 'mail2fa-message warning'], rcube::Q($this->gettext('temporaryactive')));
            }
            $out .= html::p(null, rcube::Q($this->gettext('enableintro')));
            $out .= $this->section('mail2fa-enable-app', $this->gettext('enableapp'), $this->gettext('enableappintro'),
                $this->password_field('app') , 'enrol-start', ['_method' => 'app'], $this->gettext('continue'));
            $phone = new html_inputfield(['name' => '_phone', 'id' => 'mail2fa-phone', 'class' => 'form-control', 'type' => 'tel', 'autocomplete' => 'tel', 'placeholder' => '011-45-20123456', 'required' => 'required', 'size' => 24]);
            $out .= $this->section('mail2fa-enable-sms', $this->gettext('enablesms'), $this->gettext('enablesmsintro'),
                $this->password_field('sms') . $this->field('mail2fa-phone', $this->gettext('phone'), $phone->show(), $this->gettext('phonehint')),
                'enrol-start', ['_method' => 'sms'], $this->gettext('submit'));
        } else {
            $code = $this->code_field('disable');
            $buttons = [];
            if ($method === 'sms') {
                $buttons[] = html::tag('button', ['type' => 'submit', 'name' => '_step', 'value' => 'disable-send', 'class' => 'button btn btn-secondary', 'id' => 'mail2fa-disable-send'], rcube::Q($this->gettext('sendcode')));
            }
            $out .= $this->section('mail2fa-disable', $this->gettext('disable'), $this->gettext($method === 'sms' ? 'disableintrosms' : 'disableintro'),
                $this->password_field('disable') . $code, 'disable', [], $this->gettext('disable'), $buttons);

            $buttons = [];
            if ($method === 'sms') {
                $buttons[] = html::tag('button', ['type' => 'submit', 'name' => '_step', 'value' => 'regenerate-send', 'class' => 'button btn btn-secondary', 'id' => 'mail2fa-regenerate-send'], rcube::Q($this->gettext('sendcode')));
            }
            $out .= $this->section('mail2fa-regenerate', $this->gettext('regenerate'), $this->gettext('regenerateintro'),
                $this->password_field('regenerate') . $this->code_field('regenerate'), 'regenerate', [], $this->gettext('regenerate'), $buttons);
        }
        $out .= $this->lost_phone_html();
        return $out;
    }

    private function enrol_app_html(array $data): string
    {
        $out = '';
        if (empty($data['again'])) {
            $svg = (string) ($data['qrSvg'] ?? '');
            // The QR code as an image (never inline markup): whatever the SVG holds, it cannot script this page.
            $img = html::img(['src' => 'data:image/svg+xml;base64,' . base64_encode($svg), 'alt' => $this->gettext('qralt'), 'id' => 'mail2fa-qr', 'class' => 'mail2fa-qr', 'width' => 240, 'height' => 240]);
            $groups = array_map('strval', (array) ($data['secretGroups'] ?? []));
            $out .= html::p(null, rcube::Q($this->gettext('scanqr')));
            $out .= html::div(['class' => 'mail2fa-qrbox'], $img);
            $out .= html::p(null, rcube::Q($this->gettext('manualentry')));
            $out .= html::tag('code', ['class' => 'mail2fa-secret', 'id' => 'mail2fa-secret'], rcube::Q(implode(' ', $groups)));
        } else {
            $out .= html::p(null, rcube::Q($this->gettext('typeappcodeagain')));
        }
        return $out . $this->section('mail2fa-confirm', $this->gettext('confirmtitle'), $this->gettext('confirmapp'),
            $this->code_field('confirm'), 'enrol-confirm', [], $this->gettext('submit'));
    }

    private function enrol_sms_html(array $data): string
    {
        $intro = empty($data['again'])
            ? $this->gettext(['name' => 'smssent', 'vars' => ['phone' => (string) ($data['phoneMasked'] ?? '')]])
            : $this->gettext('typesmscodeagain');
        return $this->section('mail2fa-confirm', $this->gettext('confirmtitle'), $intro,
            $this->code_field('confirm'), 'enrol-confirm', [], $this->gettext('submit'));
    }

    private function recovery_codes_html(array $data, bool $enabled): string
    {
        $codes = array_map('strval', (array) ($data['recoveryCodes'] ?? []));
        $items = '';
        foreach ($codes as $c) {
            $items .= html::tag('li', null, html::tag('code', null, rcube::Q($c)));
        }
        $out = '';
        if ($enabled) {
            $out .= html::p(['class' => 'mail2fa-message confirmation'], rcube::Q($this->gettext($data['method'] === 'sms' ? 'enabledsms' : 'enabledapp')));
        }
        $out .= html::p(null, rcube::Q($this->gettext('recoverycodesintro')));
        $out .= html::tag('ol', ['class' => 'mail2fa-codes', 'id' => 'mail2fa-recovery-codes'], $items);
        if ($enabled) {
            $out .= $this->signout_html();
        }
        return html::div(['class' => 'mail2fa-done', 'id' => $enabled ? 'mail2fa-enabled' : 'mail2fa-regenerated'], $out);
    }

    /** "You will be signed out": the button ends this session (all older sessions are ended by the revocation). */
    private function signout_html(): string
    {
        $url = $this->rc->url(['_task' => 'logout', '_token' => $this->rc->get_request_token()]);
        return html::p(['class' => 'mail2fa-message warning'], rcube::Q($this->gettext('willsignout')))
            . html::p(['class' => 'formbuttons'], html::a(['href' => $url, 'target' => '_top', 'class' => 'button mainaction btn btn-primary', 'id' => 'mail2fa-signout'], rcube::Q($this->gettext('signout'))));
    }

    private function section(string $id, string $title, string $intro, string $fields, string $step, array $hidden, string $submit, array $extra_buttons = []): string
    {
        $h = new html_hiddenfield();
        foreach ($hidden as $k => $v) {
            $h->add(['name' => $k, 'value' => $v]);
        }
        // The step travels with the button pressed (the first one is the default for Enter).
        $buttons = html::tag('button', ['type' => 'submit', 'name' => '_step', 'value' => $step, 'class' => 'button mainaction btn btn-primary', 'id' => "$id-submit"], rcube::Q($submit)) . implode('', $extra_buttons);
        $form = $this->rc->output->form_tag(['method' => 'post', 'action' => './?_task=settings&_action=plugin.mail2fa-save', 'id' => "$id-form", 'autocomplete' => 'off'],
            $h->show() . $fields . html::p(['class' => 'formbuttons'], $buttons));
        return html::tag('fieldset', ['class' => 'mail2fa-section', 'id' => $id],
            html::tag('legend', null, rcube::Q($title)) . html::p(null, rcube::Q($intro)) . $form);
    }

    private function field(string $id, string $label, string $input, ?string $hint = null): string
    {
        return html::div(['class' => 'mail2fa-field'], html::label(['for' => $id], rcube::Q($label)) . $input
            . ($hint !== null ? html::span(['class' => 'mail2fa-hint'], rcube::Q($hint)) : ''));
    }

    private function password_field(string $suffix): string
    {
        $id = "mail2fa-password-$suffix";
        $input = new html_passwordfield(['name' => '_password', 'id' => $id, 'class' => 'form-control', 'autocomplete' => 'current-password', 'required' => 'required', 'size' => 24]);
        return $this->field($id, $this->gettext('currentpassword'), $input->show());
    }

    private function code_field(string $suffix): string
    {
        $id = "mail2fa-code-$suffix";
        $input = new html_inputfield(['name' => '_code', 'id' => $id, 'class' => 'form-control', 'autocomplete' => 'one-time-code', 'autocapitalize' => 'off', 'spellcheck' => 'false', 'size' => 20, 'maxlength' => 64]);
        return $this->field($id, $this->gettext('code'), $input->show(), $suffix === 'confirm' ? null : $this->gettext('codehint'));
    }

    // ------------------------------------------------------------------------------------------------------------
    // Shared pieces

    private function notice_html(): string
    {
        if ($this->notice === null) {
            return '';
        }
        [$type, $text] = $this->notice;
        return html::div(['class' => "mail2fa-message $type", 'id' => 'mail2fa-message', 'role' => $type === 'error' ? 'alert' : 'status'], rcube::Q($text));
    }

    /** "Lost your phone? Write to customer service", with the site's address or page. */
    private function lost_phone_html(): string
    {
        $contact = (string) $this->rc->config->get('mail2fa_support_contact', '');
        $text = rcube::Q($this->gettext('lostphone')) . ' ';
        if ($contact === '') {
            return html::p(['class' => 'mail2fa-lost', 'id' => 'mail2fa-lost'], $text . rcube::Q($this->gettext('writesupport')));
        }
        $href = strpos($contact, '@') !== false && !preg_match('#^(mailto|https?):#i', $contact) ? "mailto:$contact" : $contact;
        if (!preg_match('#^(mailto:|https?://)#i', $href)) {
            $href = '';
        }
        $link = $href !== ''
            ? html::a(['href' => $href, 'target' => '_blank', 'rel' => 'noopener noreferrer', 'id' => 'mail2fa-support'], rcube::Q($this->gettext('writesupport')))
            : rcube::Q($this->gettext('writesupport'));
        return html::p(['class' => 'mail2fa-lost', 'id' => 'mail2fa-lost'], $text . $link);
    }

    /** The clear "cannot check two-factor now" page (fail closed), HTTP 503. Does not return. */
    private function unavailable_page(string $message = 'unavailable')
    {
        http_response_code(503);
        if ($this->rc->output->ajax_call) {
            $this->rc->output->show_message("mail2fa.$message", 'error');
            $this->rc->output->send();
        }
        $this->register_handler('plugin.mail2fa_signin', function () use ($message) {
            $back = html::a(['href' => $this->rc->url(['_task' => 'login'])], rcube::Q($this->gettext('backtologin')));
            return html::div(['id' => 'login-form', 'class' => 'mail2fa-signin propform'],
                html::tag('h1', ['class' => 'mail2fa-title'], rcube::Q($this->gettext($message === 'unavailable' ? 'unavailabletitle' : 'notpossibletitle')))
                . html::div(['class' => 'mail2fa-message error', 'id' => 'mail2fa-message', 'role' => 'alert'], rcube::Q($this->gettext($message)))
                . html::p(null, $back));
        });
        $this->rc->set_task('login');
        $this->rc->output->set_pagetitle($this->gettext('unavailabletitle'));
        $this->include_stylesheet($this->local_skin_path() . '/mail2fa.css');
        $this->rc->output->send('mail2fa.code');
        exit;
    }

    private function format_time($iso): string
    {
        if (!is_string($iso) || ($ts = strtotime($iso)) === false) {
            return '';
        }
        return $this->rc->format_date($ts, $this->rc->config->get('date_format', 'Y-m-d') . ' ' . $this->rc->config->get('time_format', 'H:i'));
    }

    /** The account mail2fa knows: the address the user signed in to IMAP with. */
    private function email(): string
    {
        return (string) ($_SESSION['username'] ?? '');
    }

    private function client_info(): array
    {
        $ua = (string) ($_SERVER['HTTP_USER_AGENT'] ?? '');
        $info = ['ip' => (string) rcube_utils::remote_addr()];
        if ($ua !== '') {
            $info['userAgent'] = mb_substr($ua, 0, 512);
        }
        return $info;
    }

    private function fail_open(): bool
    {
        return $this->rc->config->get('mail2fa_fail_open', false) === true;
    }

    private function client(): mail2fa_client
    {
        if ($this->client === null) {
            $token = $this->rc->config->get('mail2fa_token');
            $token_file = (string) $this->rc->config->get('mail2fa_token_file', '');
            if ($token_file !== '' && is_readable($token_file)) {
                $token = trim((string) file_get_contents($token_file));
            }
            $this->client = new mail2fa_client(
                (string) $this->rc->config->get('mail2fa_serve', 'unix:///run/mail2fa/mail2fa.sock'),
                is_string($token) ? $token : null,
                (float) $this->rc->config->get('mail2fa_timeout', 3),
                'roundcube'
            );
        }
        return $this->client;
    }

    private function log_unavailable(Exception $e): void
    {
        rcube::write_log('mail2fa', 'mail2fa serve unavailable: ' . $e->getMessage());
    }
}
