/**
 * The OAuth apps the simulator knows: one per provider. Sage registers an app's client id, secret, redirect URIs (and,
 * for Sage 200, a developer subscription key) out of band; the simulator takes them from options or the environment.
 */
export interface SageAccountingApp {
  clientId: string;
  clientSecret: string;
  /** Registered callback URL; compared byte-for-byte (Sage's registered URLs are case-sensitive). */
  redirectUri: string;
}

export interface Sage200App extends SageAccountingApp {
  /** Sent by clients as `ocp-apim-subscription-key`. */
  subscriptionKey: string;
  /** The Sage ID API audience the app must ask for (`audience=` on authorize). */
  audience: string;
}

export interface SimulatorApps {
  sageAccounting: SageAccountingApp;
  sage200: Sage200App;
}

export const DEFAULT_REDIRECT_URI = 'http://localhost:3000/oauth/callback';
export const SAGE200_AUDIENCE = 's200ukipd/sage200';

export const DEMO_APPS = {
  sageAccounting: { clientId: 'demo-sage-accounting-client', clientSecret: 'demo-sage-accounting-secret' },
  sage200: {
    clientId: 'demo-sage200-client',
    clientSecret: 'demo-sage200-secret',
    subscriptionKey: 'demo-sage200-subscription-key',
  },
} as const;

export interface AppOverrides {
  sageAccounting?: Partial<SageAccountingApp>;
  sage200?: Partial<Sage200App>;
}

export function resolveApps(overrides: AppOverrides = {}): SimulatorApps {
  return {
    sageAccounting: { ...DEMO_APPS.sageAccounting, redirectUri: DEFAULT_REDIRECT_URI, ...overrides.sageAccounting },
    sage200: {
      ...DEMO_APPS.sage200,
      redirectUri: DEFAULT_REDIRECT_URI,
      audience: SAGE200_AUDIENCE,
      ...overrides.sage200,
    },
  };
}
