import type { GraphQLResolveInfo, GraphQLScalarType, GraphQLScalarTypeConfig } from 'graphql';
import type { ReadResult } from '../reader/reader.js';
import type { ValueEvent } from '../domain/subscription-index.js';
import type { RequestContext } from '../graphql/context.js';
export type Maybe<T> = T | null;
export type InputMaybe<T> = Maybe<T>;
export type RequireFields<T, K extends keyof T> = Omit<T, K> & { [P in K]-?: NonNullable<T[P]> };
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string; output: string; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /**
   * A key's version: a decimal integer string, strictly greater for every committed change to that key.
   * It is roughly the commit time in microseconds since the epoch, but only its order is promised.
   * Sent as a string because it does not fit a GraphQL Int and must not lose precision in JavaScript clients.
   */
  Version: { input: string; output: bigint; }
};

/** What happened to a key, as a subscription reports it. */
export type ChangeOp =
  /** The key was deleted (or, in an initial event, has no value). */
  | 'DELETE'
  /** The key's value reached the expiry set with ttlSeconds; version is that of the expired value. */
  | 'EXPIRE'
  /** The key has a new value (or, in an initial event, has a value). */
  | 'SET';

/** One key's current state, as this reader knows it. */
export type Entry = {
  __typename?: 'Entry';
  /** Whether the key has a value. */
  exists: Scalars['Boolean']['output'];
  /** The key that was asked for. */
  key: Scalars['String']['output'];
  /** Where the answer came from; NONE when the key has no value. */
  source: Source;
  /** The value, or null when the key has none. */
  value: Maybe<Scalars['String']['output']>;
  /**
   * The version of the change the answer reflects: of the value, or of the delete that removed it.
   * Null when the store knows of no change (never written, or the tombstone has expired).
   */
  version: Maybe<Scalars['Version']['output']>;
};

/** One key and the value to store under it. */
export type EntryInput = {
  /** 1 to 1,024 bytes of UTF-8 (configurable), no control characters (U+0000–U+001F, U+007F) and no unpaired surrogates. */
  key: Scalars['String']['input'];
  /** Up to 1 MiB of UTF-8 (configurable), no unpaired surrogates. */
  value: Scalars['String']['input'];
};

/** The state of this process. */
export type Health = {
  __typename?: 'Health';
  /**
   * For a reader: whether its change feed is proven current, so its memory tier is trusted.
   * Null in a process that is not a reader.
   */
  feedCurrent: Maybe<Scalars['Boolean']['output']>;
  /** Always true when the server answers. */
  ok: Scalars['Boolean']['output'];
  /** The roles this process serves: reader, writer or both. */
  roles: Array<Scalars['String']['output']>;
};

export type Mutation = {
  __typename?: 'Mutation';
  /**
   * Deletes keys, all or nothing (on a Redis Cluster: per outbox shard, PARTIAL_WRITE otherwise, as for
   * setValues). Each leaves a versioned tombstone for a configured time, so that a late read cannot bring a
   * deleted value back.
   */
  deleteValues: WriteResult;
  /**
   * Stores values, all or nothing. The answer comes once Redis has committed; the change is then announced to
   * every reader. An invalid entry rejects the whole batch (BAD_USER_INPUT) and nothing is written.
   * On a Redis Cluster a batch is all or nothing per outbox shard (keys sharing a hash tag `{…}` share one): if
   * some shards commit their part and others fail, the error is PARTIAL_WRITE with `extensions.written` (keys
   * and versions committed) and `extensions.notWritten`; writing the batch again is safe. With
   * REDIS_MIN_REPLICAS_ACK, a write its replicas did not confirm in time is UNAVAILABLE although committed.
   * At most 1,000 entries per request, across all fields and aliases (configurable). A key named twice is
   * written twice, the last value winning. Needs `Authorization: Bearer <token>` when the writer has WRITE_TOKENS
   * (UNAUTHENTICATED otherwise).
   */
  setValues: WriteResult;
};


export type MutationDeleteValuesArgs = {
  keys: Array<Scalars['String']['input']>;
};


export type MutationSetValuesArgs = {
  entries: Array<EntryInput>;
  ttlSeconds?: InputMaybe<Scalars['Int']['input']>;
};

export type Query = {
  __typename?: 'Query';
  /** Whether this process is up, and which roles it serves. */
  health: Health;
  /** Looks up one key; the same batching as values. */
  value: Entry;
  /**
   * Looks up keys; answers one Entry per requested key, in request order, duplicates answered as often as asked.
   * All keys of a request, and of concurrent requests, are batched: the memory tier answers what it holds and
   * one Redis MGET per event-loop turn answers the rest. At most 1,000 keys per request, across all fields and
   * aliases (configurable), and at most 64 MiB of keys and values in the answer (RESPONSE_TOO_LARGE past it).
   */
  values: Array<Entry>;
};


export type QueryValueArgs = {
  fresh?: InputMaybe<Scalars['Boolean']['input']>;
  key: Scalars['String']['input'];
};


export type QueryValuesArgs = {
  fresh?: InputMaybe<Scalars['Boolean']['input']>;
  keys: Array<Scalars['String']['input']>;
};

/** Where the answer for a key came from. */
export type Source =
  /** The reader's in-process memory tier, kept current by the change feed. */
  | 'MEMORY'
  /** The key has no value: never written, deleted, or expired. */
  | 'NONE'
  /** Redis, the full data set (a memory miss, a fresh read, or a reader whose feed is not proven current). */
  | 'REDIS';

export type Subscription = {
  __typename?: 'Subscription';
  /**
   * Pushes every change to the watched keys that this reader applies from the change feed, in version order
   * per key, each version at most once. Give keys, a prefix, or both. Values too large to travel on the feed
   * are read from Redis once for all subscribers and sent with the event. While this reader cannot prove its
   * feed current, changes may be missed; when it can again, it re-synchronises from Redis: each watched key
   * whose stored version is newer than the last one sent is sent once, as Redis stores it now: its newest
   * version only (the versions written in between are not sent), op SET, or DELETE for a deleted key (a key
   * Redis no longer holds at all, not even as a tombstone, is not sent). For a
   * prefix, the keys re-read are those this subscription was sent most recently (up to
   * SUBSCRIPTION_REMEMBERED_KEYS). A subscriber that falls too far behind is sent a last error event with
   * extensions.code SLOW_CONSUMER, then the subscription ends; a reader that stops ends it with a complete.
   * Over the configured limits of subscriptions per connection or per process: TOO_MANY_SUBSCRIPTIONS.
   */
  valueChanged: ValueChange;
};


export type SubscriptionValueChangedArgs = {
  includeInitial?: InputMaybe<Scalars['Boolean']['input']>;
  keys?: InputMaybe<Array<Scalars['String']['input']>>;
  prefix?: InputMaybe<Scalars['String']['input']>;
};

/** One event of a valueChanged subscription: a key's state after a change, or its current state when initial. */
export type ValueChange = {
  __typename?: 'ValueChange';
  /** Whether the key has a value after the change. */
  exists: Scalars['Boolean']['output'];
  /** True for the events of the snapshot sent first when includeInitial is true; false for live changes. */
  initial: Scalars['Boolean']['output'];
  /** The key concerned. */
  key: Scalars['String']['output'];
  /**
   * What happened: SET, DELETE or EXPIRE. In an initial event, and in one sent by a resync after feed loss
   * (the stored entry, not the change), SET when the key has a value, else DELETE.
   */
  op: ChangeOp;
  /** The value after the change; null once the key has no value (deleted, expired, never written). */
  value: Maybe<Scalars['String']['output']>;
  /**
   * The version of the change: events of one key come in strictly increasing version order, each version at
   * most once (an EXPIRE repeats the version of the value that expired). Null only in an initial event for a
   * key the store knows nothing of.
   */
  version: Maybe<Scalars['Version']['output']>;
};

/** What a write committed, key by key. */
export type WriteResult = {
  __typename?: 'WriteResult';
  /** Each written key with the version it now has, in the order given. */
  written: Array<WrittenKey>;
};

/** One committed change. */
export type WrittenKey = {
  __typename?: 'WrittenKey';
  /** The key written. */
  key: Scalars['String']['output'];
  /** The version the store assigned to this change. */
  version: Scalars['Version']['output'];
};



export type ResolverTypeWrapper<T> = Promise<T> | T;


export type ResolverWithResolve<TResult, TParent, TContext, TArgs> = {
  resolve: ResolverFn<TResult, TParent, TContext, TArgs>;
};
export type Resolver<TResult, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> = ResolverFn<TResult, TParent, TContext, TArgs> | ResolverWithResolve<TResult, TParent, TContext, TArgs>;

export type ResolverFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => Promise<TResult> | TResult;

export type SubscriptionSubscribeFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => AsyncIterable<TResult> | Promise<AsyncIterable<TResult>>;

export type SubscriptionResolveFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => TResult | Promise<TResult>;

export interface SubscriptionSubscriberObject<TResult, TKey extends string, TParent, TContext, TArgs> {
  subscribe: SubscriptionSubscribeFn<{ [key in TKey]: TResult }, TParent, TContext, TArgs>;
  resolve?: SubscriptionResolveFn<TResult, { [key in TKey]: TResult }, TContext, TArgs>;
}

export interface SubscriptionResolverObject<TResult, TParent, TContext, TArgs> {
  subscribe: SubscriptionSubscribeFn<any, TParent, TContext, TArgs>;
  resolve: SubscriptionResolveFn<TResult, any, TContext, TArgs>;
}

export type SubscriptionObject<TResult, TKey extends string, TParent, TContext, TArgs> =
  | SubscriptionSubscriberObject<TResult, TKey, TParent, TContext, TArgs>
  | SubscriptionResolverObject<TResult, TParent, TContext, TArgs>;

export type SubscriptionResolver<TResult, TKey extends string, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> =
  | ((...args: any[]) => SubscriptionObject<TResult, TKey, TParent, TContext, TArgs>)
  | SubscriptionObject<TResult, TKey, TParent, TContext, TArgs>;

export type TypeResolveFn<TTypes, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>> = (
  parent: TParent,
  context: TContext,
  info: GraphQLResolveInfo
) => Maybe<TTypes> | Promise<Maybe<TTypes>>;

export type IsTypeOfResolverFn<T = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>> = (obj: T, context: TContext, info: GraphQLResolveInfo) => boolean | Promise<boolean>;

export type NextResolverFn<T> = () => Promise<T>;

export type DirectiveResolverFn<TResult = Record<PropertyKey, never>, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> = (
  next: NextResolverFn<TResult>,
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => TResult | Promise<TResult>;





/** Mapping between all available schema types and the resolvers types */
export type ResolversTypes = {
  Boolean: ResolverTypeWrapper<Scalars['Boolean']['output']>;
  ChangeOp: ChangeOp;
  Entry: ResolverTypeWrapper<ReadResult>;
  EntryInput: EntryInput;
  Health: ResolverTypeWrapper<Health>;
  Int: ResolverTypeWrapper<Scalars['Int']['output']>;
  Mutation: ResolverTypeWrapper<Record<PropertyKey, never>>;
  Query: ResolverTypeWrapper<Record<PropertyKey, never>>;
  Source: Source;
  String: ResolverTypeWrapper<Scalars['String']['output']>;
  Subscription: ResolverTypeWrapper<Record<PropertyKey, never>>;
  ValueChange: ResolverTypeWrapper<ValueEvent>;
  Version: ResolverTypeWrapper<Scalars['Version']['output']>;
  WriteResult: ResolverTypeWrapper<WriteResult>;
  WrittenKey: ResolverTypeWrapper<WrittenKey>;
};

/** Mapping between all available schema types and the resolvers parents */
export type ResolversParentTypes = {
  Boolean: Scalars['Boolean']['output'];
  Entry: ReadResult;
  EntryInput: EntryInput;
  Health: Health;
  Int: Scalars['Int']['output'];
  Mutation: Record<PropertyKey, never>;
  Query: Record<PropertyKey, never>;
  String: Scalars['String']['output'];
  Subscription: Record<PropertyKey, never>;
  ValueChange: ValueEvent;
  Version: Scalars['Version']['output'];
  WriteResult: WriteResult;
  WrittenKey: WrittenKey;
};

export type EntryResolvers<ContextType = RequestContext, ParentType extends ResolversParentTypes['Entry'] = ResolversParentTypes['Entry']> = {
  exists?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  key?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  source?: Resolver<ResolversTypes['Source'], ParentType, ContextType>;
  value?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  version?: Resolver<Maybe<ResolversTypes['Version']>, ParentType, ContextType>;
};

export type HealthResolvers<ContextType = RequestContext, ParentType extends ResolversParentTypes['Health'] = ResolversParentTypes['Health']> = {
  feedCurrent?: Resolver<Maybe<ResolversTypes['Boolean']>, ParentType, ContextType>;
  ok?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  roles?: Resolver<Array<ResolversTypes['String']>, ParentType, ContextType>;
};

export type MutationResolvers<ContextType = RequestContext, ParentType extends ResolversParentTypes['Mutation'] = ResolversParentTypes['Mutation']> = {
  deleteValues?: Resolver<ResolversTypes['WriteResult'], ParentType, ContextType, RequireFields<MutationDeleteValuesArgs, 'keys'>>;
  setValues?: Resolver<ResolversTypes['WriteResult'], ParentType, ContextType, RequireFields<MutationSetValuesArgs, 'entries'>>;
};

export type QueryResolvers<ContextType = RequestContext, ParentType extends ResolversParentTypes['Query'] = ResolversParentTypes['Query']> = {
  health?: Resolver<ResolversTypes['Health'], ParentType, ContextType>;
  value?: Resolver<ResolversTypes['Entry'], ParentType, ContextType, RequireFields<QueryValueArgs, 'fresh' | 'key'>>;
  values?: Resolver<Array<ResolversTypes['Entry']>, ParentType, ContextType, RequireFields<QueryValuesArgs, 'fresh' | 'keys'>>;
};

export type SubscriptionResolvers<ContextType = RequestContext, ParentType extends ResolversParentTypes['Subscription'] = ResolversParentTypes['Subscription']> = {
  valueChanged?: SubscriptionResolver<ResolversTypes['ValueChange'], "valueChanged", ParentType, ContextType, RequireFields<SubscriptionValueChangedArgs, 'includeInitial'>>;
};

export type ValueChangeResolvers<ContextType = RequestContext, ParentType extends ResolversParentTypes['ValueChange'] = ResolversParentTypes['ValueChange']> = {
  exists?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  initial?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  key?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  op?: Resolver<ResolversTypes['ChangeOp'], ParentType, ContextType>;
  value?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  version?: Resolver<Maybe<ResolversTypes['Version']>, ParentType, ContextType>;
};

export interface VersionScalarConfig extends GraphQLScalarTypeConfig<ResolversTypes['Version'], any> {
  name: 'Version';
}

export type WriteResultResolvers<ContextType = RequestContext, ParentType extends ResolversParentTypes['WriteResult'] = ResolversParentTypes['WriteResult']> = {
  written?: Resolver<Array<ResolversTypes['WrittenKey']>, ParentType, ContextType>;
};

export type WrittenKeyResolvers<ContextType = RequestContext, ParentType extends ResolversParentTypes['WrittenKey'] = ResolversParentTypes['WrittenKey']> = {
  key?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  version?: Resolver<ResolversTypes['Version'], ParentType, ContextType>;
};

export type Resolvers<ContextType = RequestContext> = {
  Entry?: EntryResolvers<ContextType>;
  Health?: HealthResolvers<ContextType>;
  Mutation?: MutationResolvers<ContextType>;
  Query?: QueryResolvers<ContextType>;
  Subscription?: SubscriptionResolvers<ContextType>;
  ValueChange?: ValueChangeResolvers<ContextType>;
  Version?: GraphQLScalarType;
  WriteResult?: WriteResultResolvers<ContextType>;
  WrittenKey?: WrittenKeyResolvers<ContextType>;
};

